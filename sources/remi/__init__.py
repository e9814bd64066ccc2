"""ReMI (Reasoning with Multiple Images) -> MSR records. See sources/remi/README.md."""

from sources.remi import fetch
from sources.spec import Source

SOURCE = Source.define(
    __name__,
    reader="reader:ReadReMI",
    restructure="parse:restructure",
    check_options="parse:check_options",
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadReMI"]


def __getattr__(name: str):
    """``ReadReMI`` is imported on first use: the registry reads this package without Beam."""
    if name == "ReadReMI":
        from sources.remi.reader import ReadReMI

        return ReadReMI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
