"""COCO 2017 (captions + instances) -> MIA-Bench-style instruction-following (IF) records."""

from sources.base import Source
from sources.coco import parse
from sources.coco.reader import ReadCOCO

SOURCE = Source(
    name="coco", reader=ReadCOCO, restructure=parse.restructure, check_options=parse.check_options
)

__all__ = ["SOURCE", "ReadCOCO"]
