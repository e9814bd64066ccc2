"""MathVista (Lu et al., ICLR 2024) -> MSR records: one problem + image, with its short answer.

See ``sources/mathvista/README.md`` for the layouts read, the restructuring rules, the field
table and every dead-letter reason.
"""

from sources.base import Source
from sources.mathvista import fetch, parse
from sources.mathvista.reader import ReadMathVista

SOURCE = Source.define(
    __name__,
    reader=ReadMathVista,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadMathVista"]
