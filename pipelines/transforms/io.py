"""Writing a build: records as Parquet, dead letters as JSON Lines (reading: schemas.buildio)."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.buildio import DEAD_LETTERS_DIR, RECORDS_DIR
from schemas.deadletter import DeadLetter
from schemas.parquet import RECORD_SCHEMA, to_row
from schemas.records import Record

# Rows hold metadata only (a few KB): row groups of 1,000 rows keep reads streaming in
# small steps without making the files fragmented.
ROWS_PER_GROUP = 1000


class WriteRecords(beam.PTransform):
    """Write finished records to ``<output>/records/records-SSSSS-of-NNNNN.parquet``."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, RECORDS_DIR, "records")

    def expand(self, records: beam.PCollection[Record]):
        return (
            records
            | "ToRow" >> beam.Map(to_row)
            | "WriteToParquet"
            >> beam.io.WriteToParquet(
                self._prefix,
                RECORD_SCHEMA,
                file_name_suffix=".parquet",
                record_batch_size=ROWS_PER_GROUP,
                row_group_buffer_size=8 * 1024 * 1024,
            )
        )


class WriteDeadLetters(beam.PTransform):
    """Write dead letters to ``<output>/dead_letters/dead_letters-*.jsonl``, one JSON per line."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, DEAD_LETTERS_DIR, "dead_letters")

    def expand(self, dead: beam.PCollection[DeadLetter]):
        return (
            dead
            | "ToJson" >> beam.Map(lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True))
            | "WriteToText" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl")
        )
