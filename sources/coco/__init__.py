"""COCO 2017 (captions + instances) -> MIA-Bench-style instruction-following (IF) records."""

from sources.base import Source
from sources.coco import fetch, parse
from sources.coco.reader import ReadCOCO

SOURCE = Source.define(
    __name__,
    reader=ReadCOCO,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadCOCO"]
