"""ComputeStats: per-source read / written / dropped counts, written as ``stats.json``.

Counts are computed inside the pipeline (not from runner metrics), so they are exact on
every runner and the file is written by the job itself, wherever ``--output`` points.
``read == written + sum(dropped)`` must hold per source; ``reconciled`` says whether it did.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.errors import WRITING, environment_faults, relative_to_build
from schemas.jsonsafe import dumps_strict

# Event kinds
READ = "read"
WRITTEN = "written"
DROPPED = "dropped"  # a whole record (unit "record")
IMAGES_DROPPED = "images_dropped"  # one image of a record that was kept without it


def _empty() -> dict[str, Any]:
    return {"read": 0, "written": 0, "dropped": {}, "dropped_by_stage": {}, "images_dropped": {}}


def build_stats(
    counts: list[tuple[tuple[str, str, str, str], int]],
    header: dict[str, Any],
    sections: dict[str, Any] | None = None,
) -> dict:
    """Fold ``((kind, source, stage, reason), n)`` counts into the stats.json structure.

    ``sections`` are extra top-level entries computed by other stages (e.g. ``dedupe``).
    """
    per: dict[str, dict[str, Any]] = {name: _empty() for name in header["sources"]}
    for (kind, source, stage, reason), n in sorted(counts):
        entry = per.setdefault(source, _empty())
        if kind == IMAGES_DROPPED:
            entry["images_dropped"][reason] = entry["images_dropped"].get(reason, 0) + n
        elif kind == DROPPED:
            entry["dropped"][reason] = entry["dropped"].get(reason, 0) + n
            by_stage = entry["dropped_by_stage"].setdefault(stage, {})
            by_stage[reason] = by_stage.get(reason, 0) + n
        else:
            entry[kind] += n
    totals: dict[str, Any] = {"read": 0, "written": 0, "dropped": defaultdict(int)}
    for entry in per.values():
        entry["reconciled"] = entry["read"] == entry["written"] + sum(entry["dropped"].values())
        totals["read"] += entry["read"]
        totals["written"] += entry["written"]
        for reason, n in entry["dropped"].items():
            totals["dropped"][reason] += n
    totals["dropped"] = dict(sorted(totals["dropped"].items()))
    return {
        **{k: v for k, v in header.items() if k != "sources"},
        "sources": dict(sorted(per.items())),
        "totals": totals,
        "reconciled": all(e["reconciled"] for e in per.values()),
        **dict(sorted((sections or {}).items())),
    }


def write_json(obj: dict[str, Any], path: str) -> str:
    """Write ``obj`` as JSON to ``path``; an OSError there (a full disk, an I/O error, an
    unwritable folder) is an :class:`schemas.errors.EnvironmentFault` naming the file."""
    data = dumps_strict(obj, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8")
    with environment_faults(WRITING, relative_to_build(path, "")), FileSystems.create(path) as f:
        f.write(data + b"\n")
    return path


class ComputeStats(beam.PTransform):
    """Count events and write ``stats.json``.

    Args:
        path: where to write the file.
        header: run facts copied into the file; ``header["sources"]`` lists every configured
            source so that a source with no input still appears with zeros.
        sections: optional single-element PCollections of ``{name: value}`` dicts (e.g. the
            dedupe report), merged into the file's top level.
    Input: events ``(kind, source, stage, reason)`` with kind in read / written / dropped /
    images_dropped.
    Output: a single-element PCollection holding the written path.
    """

    def __init__(self, path: str, header: dict[str, Any], sections: list | None = None) -> None:
        super().__init__()
        self._path = path
        self._header = header
        self._sections = sections or []

    def expand(self, events):
        path, header = self._path, self._header
        sides = [beam.pvalue.AsSingleton(s) for s in self._sections]

        def write(counts, *parts):
            merged: dict[str, Any] = {}
            for part in parts:
                merged.update(part)
            return write_json(build_stats(counts, header, merged), path)

        return (
            events
            | "CountEvents" >> beam.combiners.Count.PerElement()
            | "Gather" >> beam.combiners.ToList()
            | "WriteStats" >> beam.Map(write, *sides)
        )
