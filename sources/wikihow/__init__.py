"""wikiHow (VGSI, Yang et al. 2021) -> project-based learning (PBL) records.

One record per (article, method): the goal, the method title and step 1 with its image form
the question; the following steps with their images form the reference answer. See
``README.md`` in this folder.
"""

from sources.spec import Source
from sources.wikihow import fetch

SOURCE = Source.define(
    __name__,
    reader="reader:ReadWikiHow",
    restructure="parse:restructure",
    check_options="parse:check_options",
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadWikiHow"]


def __getattr__(name: str):
    """``ReadWikiHow`` is imported on first use: the registry reads this package without Beam."""
    if name == "ReadWikiHow":
        from sources.wikihow.reader import ReadWikiHow

        return ReadWikiHow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
