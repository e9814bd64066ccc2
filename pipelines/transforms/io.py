"""Writing a build: records as Parquet, dead letters as JSON Lines, and reading records back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.errors import MmloomError
from schemas.parquet import RECORD_SCHEMA, from_row, to_row

RECORDS_DIR = "records"
DEAD_LETTERS_DIR = "dead_letters"
STATS_FILE = "stats.json"

# Rows carry their images; ~100 rows per row group keeps row groups small enough for
# readers (and the Hugging Face viewer) that choke on large nested binary chunks.
ROWS_PER_GROUP = 100


class WriteRecords(beam.PTransform):
    """Write finished records to ``<output>/records/records-SSSSS-of-NNNNN.parquet``."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, RECORDS_DIR, "records")

    def expand(self, records):
        return (
            records
            | "ToRow" >> beam.Map(to_row)
            | "WriteToParquet"
            >> beam.io.WriteToParquet(
                self._prefix,
                RECORD_SCHEMA,
                file_name_suffix=".parquet",
                record_batch_size=ROWS_PER_GROUP,
                row_group_buffer_size=32 * 1024 * 1024,
            )
        )


class WriteDeadLetters(beam.PTransform):
    """Write dead letters to ``<output>/dead_letters/dead_letters-*.jsonl``, one JSON per line."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, DEAD_LETTERS_DIR, "dead_letters")

    def expand(self, dead):
        return (
            dead
            | "ToJson" >> beam.Map(lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True))
            | "WriteToText" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl")
        )


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


def read_records(build_dir: str, with_bytes: bool = False) -> Iterator[dict[str, Any]]:
    """Every record of a build, file by file, as dicts (JSON view unless ``with_bytes``)."""
    for path in record_files(build_dir):
        with FileSystems.open(path, compression_type="uncompressed") as f:
            table = pq.read_table(f)
        for row in table.to_pylist():
            yield from_row(row, with_bytes=with_bytes)


def read_dead_letters(build_dir: str) -> Iterator[dict[str, Any]]:
    pattern = FileSystems.join(build_dir, DEAD_LETTERS_DIR, "*.jsonl")
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path, compression_type="uncompressed") as f:
            for line in f.read().decode("utf-8").splitlines():
                if line.strip():
                    yield json.loads(line)
