"""Toy: a sixth source that lives only in the test folder (tests/sources/test_toy_source.py).

It shows the folder contract: everything about a source (reader, restructure hook, fetch
plan, card, config options, checksums) is declared here, and the registry finds it through
``MMLOOM_SOURCES=tests.sources.toy`` (or ``sources.register``) with nothing outside this
folder changed. Format: ``toy.jsonl``, one problem per line ``{"id", "question", "answer",
"image"}``, with its images (PNG) in a folder beside it.
"""

from sources.base import Source
from tests.sources.toy import fetch, parse
from tests.sources.toy.reader import ReadToy

SOURCE = Source.define(
    __name__,
    reader=ReadToy,
    restructure=parse.restructure,
    check_options=parse.check_options,
    fetch=fetch.FETCH,
)

__all__ = ["SOURCE", "ReadToy"]
