"""ReMI (Reasoning with Multiple Images) -> MSR records. See sources/remi/README.md."""

from sources.base import Source
from sources.remi import fetch, parse
from sources.remi.reader import ReadReMI

SOURCE = Source.define(
    __name__,
    reader=ReadReMI,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadReMI"]
