"""VIST (Visual Storytelling) source: SIS stories -> SA / Literature records.

See ``sources/vist/README.md`` for the expected files, the mapping table and dead letters.
"""

from sources.base import Source
from sources.vist import fetch, parse
from sources.vist.reader import ReadVIST

SOURCE = Source.define(
    __name__,
    reader=ReadVIST,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadVIST"]
