"""Writing a build: records as Parquet, dead letters as JSON Lines (reading: schemas.buildio)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from schemas.buildio import DEAD_LETTERS_DIR, RECORDS_DIR, write_manifest
from schemas.deadletter import DEAD, DeadLetter, dead_letter, from_exception
from schemas.errors import RecordError
from schemas.jsonsafe import replace_non_finite
from schemas.parquet import RECORD_SCHEMA, checked_row
from schemas.records import Record

STAGE_WRITE = "write_records"

# Rows hold metadata only (a few KB): row groups of 1,000 rows keep reads streaming in
# small steps without making the files fragmented.
ROWS_PER_GROUP = 1000


class ToRecordRow(beam.DoFn):
    """A record as its Parquet row, checked against the column types before any write, so one
    bad value (an out-of-range integer, NaN, a lone surrogate) cannot fail the writer."""

    def process(self, record: Record) -> Iterator[dict[str, Any] | TaggedOutput]:
        prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
        source, source_id = str(prov.get("source", "unknown")), str(prov.get("source_id", "?"))
        try:
            yield checked_row(record)
        except RecordError as exc:
            detail = f"id={record.get('id')}; {exc.detail}"
            yield TaggedOutput(
                DEAD, dead_letter(STAGE_WRITE, exc.reason, source, source_id, detail)
            )
        except Exception as exc:  # a bug must not fail the job: it is counted and kept
            yield TaggedOutput(DEAD, from_exception(STAGE_WRITE, source, source_id, exc))


class WriteRecords(beam.PTransform):
    """Write finished records to ``<output>/records/records-SSSSS-of-NNNNN.parquet``.

    Input: finished records.
    Output: a dict: ``rows`` (what was written, one Parquet row each), ``files`` (the shard
    names, once written) and ``DEAD`` (records whose values the schema cannot hold).
    Dead letters: stage ``write_records``; reasons ``value_out_of_range``,
    ``non_finite_value``, ``invalid_utf8``, ``unwritable_value``, ``unexpected_error``.
    """

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, RECORDS_DIR, "records")

    def expand(self, records: beam.PCollection[Record]):
        checked = records | "ToRow" >> beam.ParDo(ToRecordRow()).with_outputs(DEAD, main="rows")
        files = checked.rows | "WriteToParquet" >> beam.io.WriteToParquet(
            self._prefix,
            RECORD_SCHEMA,
            file_name_suffix=".parquet",
            record_batch_size=ROWS_PER_GROUP,
            row_group_buffer_size=8 * 1024 * 1024,
        )
        return {"rows": checked.rows, "files": files, DEAD: checked[DEAD]}


def dead_letter_json(dead: dict[str, Any]) -> str:
    """One dead letter as a line of strict JSON, whatever its values (never raises)."""
    try:
        text = json.dumps(dead, ensure_ascii=False, sort_keys=True, allow_nan=False, default=str)
        text.encode("utf-8")
        return text
    except (TypeError, ValueError):  # NaN, a lone surrogate, an odd key
        clean = replace_non_finite(dead)[0]
        return json.dumps(clean, ensure_ascii=True, sort_keys=True, default=repr)


class WriteDeadLetters(beam.PTransform):
    """Write dead letters to ``<output>/dead_letters/dead_letters-*.jsonl``, one JSON per line.

    The lines are sorted (gathered on one worker: dead letters are few and small, details
    are capped), so two builds of the same inputs write byte-identical dead-letter files.
    """

    def __init__(self, output: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output, DEAD_LETTERS_DIR, "dead_letters")

    def expand(self, dead: beam.PCollection[DeadLetter]):
        return (
            dead
            | "ToJson" >> beam.Map(dead_letter_json)
            | "Gather" >> beam.combiners.ToList()
            | "Sorted" >> beam.FlatMap(sorted)
            | "WriteToText" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl")
        )


class WriteManifest(beam.PTransform):
    """Write ``<output>/_BUILD.json``, the completion manifest, after everything else.

    Input: the single-element PCollection of the written stats.json path.
    Args:
        waits_for: PCollections whose whole contents must exist first (the record and
            dead-letter file names the writers return): they are side inputs, so this step
            runs only after the writers finished.
        images_referenced: a single-element PCollection, distinct images the records use.
    Output: the manifest's path. A manifest is never written over incomplete shards: the
    step fails instead (:func:`schemas.buildio.write_manifest`).
    """

    def __init__(self, output: str, header: dict[str, Any], waits_for: list, images_referenced):
        super().__init__()
        self._output = output
        self._header = header
        self._waits_for = waits_for
        self._images = images_referenced

    def expand(self, stats_path):
        output, header = self._output, self._header

        def write(_stats: str, images: int, *_written) -> str:
            write_manifest(output, header, images_referenced=images)
            return FileSystems.join(output, "_BUILD.json")

        return stats_path | "Write" >> beam.Map(
            write,
            beam.pvalue.AsSingleton(self._images),
            *[beam.pvalue.AsList(w) for w in self._waits_for],
        )
