"""VIST (Visual Storytelling) source: SIS stories -> SA / Literature records.

See ``sources/vist/README.md`` for the expected files, the mapping table and dead letters.
"""

from sources.spec import Source
from sources.vist import fetch

SOURCE = Source.define(
    __name__,
    reader="reader:ReadVIST",
    restructure="parse:restructure",
    check_options="parse:check_options",
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadVIST"]


def __getattr__(name: str):
    """``ReadVIST`` is imported on first use: the registry reads this package without Beam."""
    if name == "ReadVIST":
        from sources.vist.reader import ReadVIST

        return ReadVIST
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
