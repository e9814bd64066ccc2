"""Writing a build: records as Parquet, dead letters as JSON Lines (reading: schemas.buildio).

Both writers are deterministic: the number of shards follows from the number of elements, an
element's shard from a hash of its key, and the order inside a shard from the key. So two
builds of the same inputs write byte-identical files whatever the runner, the number of
workers or the order elements arrive in (Beam's own file sinks shard by bundle).

A write that fails (a full disk, an I/O error, an unwritable folder) raises
:class:`schemas.errors.EnvironmentFault` and stops the run: nothing is dropped for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from schemas.buildio import DEAD_LETTERS_DIR, MANIFEST_FILE, RECORDS_DIR, write_manifest
from schemas.deadletter import DEAD, STAGE_WRITE, DeadLetter, origin
from schemas.errors import WRITING, RecordError, environment_faults, relative_to_build
from schemas.jsonsafe import replace_non_finite
from schemas.parquet import RECORD_SCHEMA, checked_row
from schemas.records import Record
from schemas.stage import RecordStage, StageFn, StageReason

# Rows hold metadata only (a few KB): row groups of 1,000 rows keep reads streaming in
# small steps without making the files fragmented.
ROWS_PER_GROUP = 1000
# A shard is sorted in the memory of one worker: 10,000 rows of a few KB each is tens of MB.
RECORDS_PER_SHARD = 10_000
DEAD_LETTERS_PER_SHARD = 100_000


def shard_count(n: int, per_shard: int) -> int:
    """Shards for ``n`` elements: at least one (an empty build still has its shard)."""
    return max(1, -(-n // per_shard))


def shard_of(key: str, shards: int) -> int:
    """The shard of an element with sort key ``key`` (stable across runs and machines)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_path(prefix: str, index: int, shards: int, suffix: str) -> str:
    return f"{prefix}-{index:05d}-of-{shards:05d}{suffix}"


class WriteSortedShards(beam.PTransform):
    """Write ``(key, payload)`` pairs into ``<prefix>-SSSSS-of-NNNNN<suffix>`` deterministically.

    ``shard_count(n, per_shard)`` shards, each element in ``shard_of(key)``, each shard's
    payloads in key order (ties keep no particular order, so keys should be unique), every
    shard written, empty ones included. ``write(path, payloads)`` writes one file; an OSError
    there (a full disk, an I/O error, an unwritable folder) is an
    :class:`schemas.errors.EnvironmentFault` naming the shard relative to ``build_dir``, and
    stops the run.

    Output: the paths written (one per shard).
    """

    def __init__(
        self,
        prefix: str,
        suffix: str,
        per_shard: int,
        write: Callable[[str, list[Any]], None],
        build_dir: str = "",
    ) -> None:
        super().__init__()
        self._prefix, self._suffix, self._per_shard, self._write = prefix, suffix, per_shard, write
        self._build_dir = build_dir

    def expand(self, keyed: beam.PCollection[tuple[str, Any]]) -> beam.PCollection[str]:
        per_shard = self._per_shard
        shards = (
            keyed
            | "Count" >> beam.combiners.Count.Globally()
            | "Shards" >> beam.Map(lambda n: shard_count(n, per_shard))
        )
        every_shard = shards | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        assigned = keyed | "AssignShard" >> beam.Map(
            lambda kv, n: (shard_of(kv[0], n), kv), beam.pvalue.AsSingleton(shards)
        )
        prefix, suffix, write, build_dir = self._prefix, self._suffix, self._write, self._build_dir

        def write_shard(group: tuple[int, Iterable[Any]], n: int) -> str:
            index, values = group
            pairs = sorted((kv for kv in values if kv is not None), key=lambda kv: kv[0])
            path = shard_path(prefix, index, n, suffix)
            with environment_faults(WRITING, relative_to_build(path, build_dir)):
                write(path, [payload for _, payload in pairs])
            return path

        return (
            (assigned, every_shard)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(write_shard, beam.pvalue.AsSingleton(shards))
        )


def write_parquet_shard(path: str, rows: list[dict[str, Any]]) -> None:
    """One records shard: ``rows`` (already checked) in row groups of ROWS_PER_GROUP."""
    with FileSystems.create(path) as handle, pq.ParquetWriter(handle, RECORD_SCHEMA) as writer:
        for start in range(0, max(len(rows), 1), ROWS_PER_GROUP):
            chunk = rows[start : start + ROWS_PER_GROUP]
            writer.write_table(pa.Table.from_pylist(chunk, schema=RECORD_SCHEMA))


def write_lines_shard(path: str, lines: list[str]) -> None:
    """One JSON Lines shard."""
    with FileSystems.create(path) as handle:
        for line in lines:
            handle.write(line.encode("utf-8") + b"\n")


class ToRecordRow(StageFn):
    """A record as its Parquet row, checked against the column types before any write, so one
    bad value (an out-of-range integer, NaN, a lone surrogate) cannot fail the writer."""

    def process_element(self, record: Record) -> Iterator[dict[str, Any] | TaggedOutput]:
        try:
            row = checked_row(record)
        except RecordError as exc:  # any other exception: the base's unexpected_error
            detail = f"id={record.get('id')}; {exc.detail}"
            yield self.reject(exc.reason, *origin(record), detail)
            return
        self.count("out")
        yield row


class WriteRecords(RecordStage):
    """Write finished records to ``<output>/records/records-SSSSS-of-NNNNN.parquet``.

    Deterministic (:class:`WriteSortedShards`): ``ceil(n / RECORDS_PER_SHARD)`` shards, rows
    sorted by ``id`` (unique after ``DedupeById``), row groups of ``ROWS_PER_GROUP`` rows.

    Input: finished records.
    Output: ``rows`` (what was written, one Parquet row each), ``files`` (the shard names,
    once written) and ``DEAD`` (records whose values the schema cannot hold; stage
    ``write_records``).
    Counters (``WriteRecords``): ``out``, ``dropped_<reason>``.
    """

    stage = STAGE_WRITE
    fns = (ToRecordRow,)
    main = "rows"
    outputs = ("files",)

    class Reason(StageReason):
        VALUE_OUT_OF_RANGE = (
            "value_out_of_range",
            "a number its Parquet column cannot hold (e.g. a MathVista precision of 1e308)",
        )
        NON_FINITE_VALUE = (
            "non_finite_value",
            "NaN or Infinity outside `source_metadata` (where it becomes null instead)",
        )
        INVALID_UTF8 = "invalid_utf8", "a string that is not valid UTF-8 (a lone surrogate)"
        UNWRITABLE_VALUE = "unwritable_value", "any other value the Parquet columns do not take"

    def __init__(self, output: str) -> None:
        super().__init__()
        self._output = output
        self._prefix = FileSystems.join(output, RECORDS_DIR, "records")

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        checked = records | "ToRow" >> self.par_do(ToRecordRow())
        files = (
            checked.rows
            | "KeyById" >> beam.Map(lambda row: (row["id"], row))
            | "WriteParquet"
            >> WriteSortedShards(
                self._prefix, ".parquet", RECORDS_PER_SHARD, write_parquet_shard, self._output
            )
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
    """Write dead letters to ``<output>/dead_letters/dead_letters-*.jsonl``, one JSON per line."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._output = output
        self._prefix = FileSystems.join(output, DEAD_LETTERS_DIR, "dead_letters")

    def expand(self, dead: beam.PCollection[DeadLetter]):
        return (
            dead
            | "ToJson" >> beam.Map(dead_letter_json)
            | "KeyByLine" >> beam.Map(lambda line: (line, line))
            | "WriteJsonl"
            >> WriteSortedShards(
                self._prefix, ".jsonl", DEAD_LETTERS_PER_SHARD, write_lines_shard, self._output
            )
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
    step fails instead (:func:`schemas.buildio.write_manifest`); an OSError there is an
    :class:`schemas.errors.EnvironmentFault`.
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
            # it reads the shards back and writes the manifest: all of it the build's own files
            with environment_faults(WRITING, MANIFEST_FILE):
                write_manifest(output, header, images_referenced=images)
            return FileSystems.join(output, "_BUILD.json")

        return stats_path | "Write" >> beam.Map(
            write,
            beam.pvalue.AsSingleton(self._images),
            *[beam.pvalue.AsList(w) for w in self._waits_for],
        )
