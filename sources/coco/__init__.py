"""COCO 2017 (captions + instances) -> MIA-Bench-style instruction-following (IF) records."""

from sources.coco import fetch
from sources.spec import Source

SOURCE = Source.define(
    __name__,
    reader="reader:ReadCOCO",
    restructure="parse:restructure",
    check_options="parse:check_options",
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadCOCO"]


def __getattr__(name: str):
    """``ReadCOCO`` is imported on first use: the registry reads this package without Beam."""
    if name == "ReadCOCO":
        from sources.coco.reader import ReadCOCO

        return ReadCOCO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
