"""``ReadWikiHow``: the Beam transform that reads wikiHow (VGSI) into items."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.deadletter import DEAD
from schemas.errors import PipelineConfigError
from schemas.fs import match
from schemas.metrics import inc
from sources.wikihow import parse

NAMESPACE = "ReadWikiHow"


def _lines(path: str) -> Iterator[bytes]:
    """Stream the raw lines of one file (any Beam filesystem; ``.gz`` is decompressed)."""
    with FileSystems.open(path) as f:
        while line := f.readline():
            yield line


class ReadWikiHowFn(beam.DoFn):
    """Parse one ``WikihowText_data.json`` into (article, method) items.

    The step-image folders (images root, ``train/``, ``test/``) are listed once per worker in
    :meth:`setup`.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.lookup: dict[str, str] = {}

    def setup(self) -> None:
        self.lookup = parse.image_lookup(self.options["images"])

    def process(self, path: str) -> Iterator[Any]:
        pairs = parse.read_lines(
            _lines(path),
            path,
            self.lookup,
            split=self.options.get("split", parse.DEFAULT_SPLIT),
            images_root=self.options["images"],
        )
        for kind, value in pairs:
            if kind == "item":
                inc(NAMESPACE, "items")
                yield value
            else:
                inc(NAMESPACE, f"dropped_{value['reason']}")
                yield beam.pvalue.TaggedOutput(DEAD, value)


class ReadWikiHow(beam.PTransform):
    """Read wikiHow (VGSI) articles into one item per (article, method).

    Args:
        options: the ``sources.wikihow`` config block: ``text`` (path or glob of
            ``WikihowText_data.json``, JSON Lines), ``images`` (folder of ``<step_id>.png``,
            flat or in ``train/`` and ``test/``), ``split`` (default ``"all"``).
    Input: the pipeline root.
    Output: a ``DoOutputsTuple``: ``items`` (dicts with ``source``, ``source_id`` = method id,
        ``split``, ``source_file``, the article fields and the method's steps, each step with
        ``image_uri`` or ``None``) and ``DEAD`` (read-stage dead letters).
    Dead letters: ``malformed_json``, ``missing_key``, ``bad_value``, ``no_methods``,
        ``path_escapes_root``, ``unexpected_error`` (see sources/wikihow/README.md).
    Counters (namespace ``ReadWikiHow``): ``items``, ``dropped_<reason>``.

    Example:
        items = p | "ReadWikiHow" >> ReadWikiHow({"text": ".../WikihowText_data.json",
                                                   "images": ".../wiki_images"})
        items.items, items[DEAD]
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self.options = dict(options)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        pattern = self.options["text"]
        files = match(pattern)
        if not files:
            raise PipelineConfigError(f"sources.wikihow.text: no file matches {pattern}")
        return (
            pbegin
            | "CreateWikiHowFiles" >> beam.Create(files)
            | "ParseWikiHowFiles"
            >> beam.ParDo(ReadWikiHowFn(self.options)).with_outputs(DEAD, main="items")
        )
