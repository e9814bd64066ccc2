"""MathVista (Lu et al., ICLR 2024) -> MSR records: one problem + image, with its short answer.

See ``sources/mathvista/README.md`` for the layouts read, the restructuring rules, the field
table and every dead-letter reason.
"""

from sources.mathvista import fetch
from sources.spec import Source

SOURCE = Source.define(
    __name__,
    reader="reader:ReadMathVista",
    restructure="parse:restructure",
    check_options="parse:check_options",
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadMathVista"]


def __getattr__(name: str):
    """``ReadMathVista`` is imported on first use: the registry reads this package without Beam."""
    if name == "ReadMathVista":
        from sources.mathvista.reader import ReadMathVista

        return ReadMathVista
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
