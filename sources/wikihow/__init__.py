"""wikiHow (VGSI, Yang et al. 2021) -> project-based learning (PBL) records.

One record per (article, method): the goal, the method title and step 1 with its image form
the question; the following steps with their images form the reference answer. See
``README.md`` in this folder.
"""

from sources.base import Source
from sources.wikihow import fetch, parse
from sources.wikihow.reader import ReadWikiHow

SOURCE = Source.define(
    __name__,
    reader=ReadWikiHow,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadWikiHow"]
