"""Run a reader's per-file step without a pipeline (what its ParDo does for each file)."""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from schemas.deadletter import DEAD


def read_units(reader, paths: Iterable[str] | None = None) -> tuple[list[dict], list[dict]]:
    """``(items, dead letters)`` of ``reader`` over ``paths``: by default its input files and
    then its side files (each side file is a unit of its own, as in the pipeline)."""
    if paths is None:
        paths = [*reader.files, *reader.side]
    reader.setup()
    items: list[dict] = []
    dead: list[dict] = []
    for path in paths:
        for out in reader.read_file(path):
            if isinstance(out, beam.pvalue.TaggedOutput):
                assert out.tag == DEAD
                dead.append(out.value)
            else:
                items.append(out)
    return items, dead
