"""Reading a build: its records, stats, dead letters (the image store is ``schemas.store``).

A build folder::

    records/records-SSSSS-of-NNNNN.parquet   one row per record, no image bytes
    images/<sha256>.<ext>                    the image store (schemas.store), written once
    dead_letters/dead_letters-*.jsonl        one line per rejected input
    stats.json                               counts per source and stage

Readers stream: :func:`read_records` yields one record at a time, reading one row group
at a time, so nothing holds a whole build in memory. This module is the bottom layer: it
imports no Beam transform, so ``mmloom show``, ``publish`` and ``annotate`` stay light.
Paths may be local or any Beam filesystem URI (``gs://...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from schemas.errors import MmloomError
from schemas.parquet import from_row

RECORDS_DIR = "records"
DEAD_LETTERS_DIR = "dead_letters"
STATS_FILE = "stats.json"


def record_files(build_dir: str) -> list[str]:
    result = FileSystems.match([FileSystems.join(build_dir, RECORDS_DIR, "*.parquet")])[0]
    return sorted(m.path for m in result.metadata_list)


def require_records(build_dir: str) -> list[str]:
    """The build's record files; a clear error when there are none."""
    files = record_files(build_dir)
    if not files:
        raise MmloomError(
            f"{build_dir} holds no records/*.parquet; run `mmloom build --config ... "
            f"--output {build_dir}` first"
        )
    return files


def read_stats(build_dir: str) -> dict[str, Any]:
    """The build's stats.json, or ``{}`` when it has none."""
    path = FileSystems.join(build_dir, STATS_FILE)
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return json.loads(f.read())


def iter_parquet_rows(path: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of one Parquet file, one row group at a time.

    Local files are opened by path; other filesystems through Beam's ``FileSystems``.
    Reads run without pyarrow's thread pool: threaded reads of a Python file object abort
    the process now and then under pyarrow 25 (``mmloom show`` exited 134 in 1-3 of 10 runs).
    """
    if "://" not in path:
        pfile = pq.ParquetFile(path)
        try:
            for group in range(pfile.num_row_groups):
                table = pfile.read_row_group(group, columns=columns, use_threads=False)
                yield from table.to_pylist()
        finally:
            pfile.close()
        return
    with FileSystems.open(path, compression_type="uncompressed") as f:
        pfile = pq.ParquetFile(f)
        for group in range(pfile.num_row_groups):
            yield from pfile.read_row_group(group, columns=columns, use_threads=False).to_pylist()


def read_records(build_dir: str) -> Iterator[dict[str, Any]]:
    """Every record of a build as its JSON view, streamed file by file and row group by row
    group (shard order, not sorted). Images are references into the build's store:
    ``schemas.store.ImageStore(build_dir).get(image["path"])`` returns the bytes."""
    for path in record_files(build_dir):
        for row in iter_parquet_rows(path):
            yield from_row(row)


def read_dead_letters(build_dir: str) -> Iterator[dict[str, Any]]:
    pattern = FileSystems.join(build_dir, DEAD_LETTERS_DIR, "*.jsonl")
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path, compression_type="uncompressed") as f:
            for line in f.read().decode("utf-8").splitlines():
                if line.strip():
                    yield json.loads(line)


# ------------------------------------------------------------------------------ releases

RELEASE_DATA_DIR = "data"
RELEASE_MANIFEST = "manifest.json"
_RELEASE_JSON_COLUMNS = ("answer_value", "source_metadata")


def is_release(path: str) -> bool:
    """Is ``path`` a folder written by ``mmloom publish`` (``data/*.parquet`` + manifest)?"""
    data = FileSystems.join(path, RELEASE_DATA_DIR, "*.parquet")
    return (
        FileSystems.exists(FileSystems.join(path, RELEASE_MANIFEST))
        and not FileSystems.exists(FileSystems.join(path, RECORDS_DIR))
        and bool(FileSystems.match([data])[0].metadata_list)
    )


def read_release_manifest(path: str) -> dict[str, Any]:
    with FileSystems.open(
        FileSystems.join(path, RELEASE_MANIFEST), compression_type="uncompressed"
    ) as f:
        return json.loads(f.read())


def _release_view(row: dict[str, Any]) -> dict[str, Any]:
    """A release row as JSON: segment images by path (their bytes left out), JSON columns
    parsed."""
    out = dict(row)
    for key in ("question", "answer", "gt_answer"):
        out[key] = [
            {"text": s["text"], "image": None if s["image"] is None else s["image"]["path"]}
            for s in row[key] or []
        ]
    for key in _RELEASE_JSON_COLUMNS:
        out[key] = None if row.get(key) is None else json.loads(row[key])
    if out.get("instruction"):
        out["instruction"] = {
            **out["instruction"],
            "components": [
                {**c, "facts": None if c["facts"] is None else json.loads(c["facts"])}
                for c in out["instruction"]["components"]
            ],
        }
    return out


def read_release_records(path: str) -> Iterator[dict[str, Any]]:
    """Every record of a release, streamed shard by shard, row group by row group."""
    pattern = FileSystems.join(path, RELEASE_DATA_DIR, "*.parquet")
    for shard in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        for row in iter_parquet_rows(shard):
            yield _release_view(row)


def read_release_image(path: str, image_path: str) -> bytes:
    """The bytes of one image of a release (``images/<sha256>.<ext>``), from its shards."""
    pattern = FileSystems.join(path, RELEASE_DATA_DIR, "*.parquet")
    for shard in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        for row in iter_parquet_rows(shard, columns=["question", "answer", "gt_answer"]):
            for key in ("question", "answer", "gt_answer"):
                for s in row[key] or []:
                    if s["image"] is not None and s["image"]["path"] == image_path:
                        return s["image"]["bytes"]
    raise FileNotFoundError(f"no image {image_path} in the release {path}")
