"""``ReadCOCO``: COCO 2017 captions + instances files -> one item per image (see parse.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from schemas.deadletter import DEAD, STAGE_READ, dead_letter
from schemas.errors import RecordError
from schemas.fs import match
from schemas.metrics import inc
from sources.coco import parse


class ReadCOCOFileFn(beam.DoFn):
    """Parse one captions file and its instances file (each loaded once) into items.

    Input: the URI of a ``captions_<split>2017.json``.
    Output: items (main output); read dead letters under ``DEAD``.
    Counters (namespace ``ReadCOCO``): ``items``, ``dropped_<reason>``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = dict(options)

    def process(self, captions_file: str) -> Iterator[Any]:
        opts = self._options
        where = parse.relative_name(captions_file, opts.get("root"))
        instances_file = parse.paths(opts)["instances"]
        try:
            captions = parse.load_json(captions_file, "captions file")
        except RecordError as exc:
            yield from self._dead(dead_letter(STAGE_READ, exc.reason, "coco", where, exc.detail))
            return
        instances, instances_error = None, None
        try:
            instances = parse.load_json(instances_file, "instances file")
        except RecordError as exc:
            instances_error = exc
        units = parse.iter_units(
            captions,
            instances,
            options=opts,
            captions_file=captions_file,
            instances_file=instances_file,
            instances_error=instances_error,
        )
        try:
            for kind, value in units:
                if kind == "item":
                    inc("ReadCOCO", "items")
                    yield value
                else:
                    yield from self._dead(value)
        except Exception as exc:  # a bug must show up in the stats, not crash the run
            detail = f"{where}: {type(exc).__name__}: {exc}"
            letter = dead_letter(STAGE_READ, "unexpected_error", "coco", where, detail)
            yield from self._dead(letter)

    @staticmethod
    def _dead(letter: dict[str, Any]) -> Iterator[Any]:
        inc("ReadCOCO", f"dropped_{letter['reason']}")
        yield beam.pvalue.TaggedOutput(DEAD, letter)


class ReadCOCO(beam.PTransform):
    """Read COCO 2017 images with their captions and instance annotations.

    Args:
        options: the ``sources.coco`` config block (``root``, ``split``, optional
            ``captions`` / ``instances`` / ``images`` overrides, ``seed``, component range).

    Input: the pipeline root.
    Output: a ``DoOutputsTuple``: main ``items`` (one per image of the captions file) and
        ``DEAD`` (read dead letters).
    Dead letters: see ``sources/coco/parse.py`` and the README (``no_captions``,
        ``unknown_image_id``, ``missing_key``, ``path_escapes_root``, ...).
    Counters (namespace ``ReadCOCO``): ``items``, ``dropped_<reason>``.

    Example:
        ``p | "ReadCOCO" >> ReadCOCO({"root": "/data/coco", "split": "val"})``
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self._options = dict(options)

    def expand(self, pbegin):
        files = match(parse.paths(self._options)["captions"])
        return (
            pbegin
            | "CreateCOCOFiles" >> beam.Create(files)
            | "ParseCOCOFiles"
            >> beam.ParDo(ReadCOCOFileFn(self._options)).with_outputs(DEAD, main="items")
        )
