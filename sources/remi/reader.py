"""``ReadReMI``: stream ReMI parquet files into one item per row."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.deadletter import DEAD, STAGE_READ, dead_letter, from_exception
from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import match
from schemas.metrics import inc
from sources.remi import parse

NAMESPACE = "ReadReMI"
BATCH_ROWS = 16  # rows per arrow batch: ReMI rows carry 2-6 embedded images (~200 KB each)

log = logging.getLogger(__name__)


class ParseReMIFileFn(beam.DoFn):
    """One parquet file path -> one item per row, or dead letters (stage ``read``).

    A file that cannot be opened as parquet or lacks the required columns is one
    ``malformed_file`` dead letter (the file is the unit); one that cannot be opened at all
    is one ``unreadable_file`` dead letter. Rows are read one row group at a time, in
    batches; if a row group cannot be decoded, every row of it not yet emitted is an
    ``undecodable_row`` dead letter (row counts come from the footer) and reading goes on
    with the next row group.
    """

    batch_rows = BATCH_ROWS

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = dict(options)

    def _dead(self, reason: str, source_id: str, detail: str) -> beam.pvalue.TaggedOutput:
        inc(NAMESPACE, f"dropped_{reason}")
        return beam.pvalue.TaggedOutput(
            DEAD, dead_letter(STAGE_READ, reason, parse.SOURCE, source_id, detail)
        )

    def process(self, path: str) -> Iterator[Any]:
        inc(NAMESPACE, "files")
        try:
            handle = FileSystems.open(path, compression_type="uncompressed")
        except Exception as exc:
            detail = f"{path}: cannot open: {type(exc).__name__}: {exc}"
            yield self._dead("unreadable_file", path, detail)
            return
        with handle:
            yield from self._rows(handle, path)

    def _rows(self, handle: Any, path: str) -> Iterator[Any]:
        import pyarrow.parquet as pq

        split, shard = parse.split_of(path)
        try:
            pfile = pq.ParquetFile(handle)
            numbers = parse.check_columns(pfile.schema_arrow, path)
            columns = [*parse.REQUIRED_COLUMNS, *(f"image_{n}" for n in numbers)]
        except RecordError as exc:
            yield self._dead(exc.reason, path, exc.detail)
            return
        except Exception as exc:
            detail = f"{path}: not a readable parquet file: {type(exc).__name__}: {exc}"
            yield self._dead("malformed_file", path, detail)
            return
        base = 0
        for group in range(pfile.num_row_groups):
            n_rows = pfile.metadata.row_group(group).num_rows
            batches = pfile.iter_batches(
                batch_size=self.batch_rows, row_groups=[group], columns=columns
            )
            done = 0
            while done < n_rows:
                try:
                    batch = next(batches)
                except Exception as exc:  # StopIteration too: fewer rows than the footer says
                    error = f"{type(exc).__name__}: {exc}"
                    for row in range(base + done, base + n_rows):
                        source_id = parse.row_key(split, shard, row)
                        detail = f"{path} row {row} (row group {group}) cannot be decoded: {error}"
                        yield self._dead("undecodable_row", source_id, detail)
                    break
                for row in batch.to_pylist():
                    yield from self._item(row, path, split, shard, base + done, numbers)
                    done += 1
            base += n_rows

    def _item(
        self, row: dict, path: str, split: str, shard: int, index: int, numbers: list[int]
    ) -> Iterator[Any]:
        source_id = parse.row_key(split, shard, index)
        try:
            item = parse.make_item(
                row, path=path, split=split, shard=shard, index=index, image_numbers=numbers
            )
        except Exception as exc:
            dl = from_exception(STAGE_READ, parse.SOURCE, source_id, exc)
            yield self._dead(dl["reason"], source_id, dl["detail"])
            return
        if item["task"] not in parse.task_table():
            # Kept as an item: restructure turns it into an `unknown_task` dead letter.
            inc(NAMESPACE, "warn_unknown_task")
            log.warning("ReMI %s row %d: unknown task %r", path, index, item["task"])
        inc(NAMESPACE, "items")
        yield item


class ReadReMI(beam.PTransform):
    """Read ReMI parquet files (``train.parquet``, ``test.parquet``, or the HF conversion).

    Args:
        options: the ``sources.remi`` config block: ``parquet`` (a path or glob; the split is
            the file stem, or the parent folder for ``<split>/0000.parquet``).

    Input: the pipeline root.
    Output: a ``DoOutputsTuple``: main output ``items`` (one dict per parquet row, with
        ``source``, ``source_id`` (``<split>/<row>``), ``split``, ``source_file``, ``row``,
        ``shard``, ``question``, ``label``, ``task`` and ``images`` {N: {bytes, path} | None}).
    Dead letters (``DEAD``, stage ``read``):
        ``unreadable_file`` (cannot be opened; one per file), ``malformed_file`` (not parquet,
        or missing/mistyped required columns; one per file), ``undecodable_row`` (a row of a
        row group that cannot be decoded), ``missing_key`` (null question, label or task).
    Counters (namespace ``ReadReMI``): ``files``, ``items``, ``dropped_<reason>``,
        ``warn_unknown_task``.

    Example:
        items = p | "ReadReMI" >> ReadReMI({"parquet": "/data/remi/*.parquet"})
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self._options = dict(options)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        pattern = self._options["parquet"]
        files = match(pattern)
        if not files:
            raise PipelineConfigError(f"sources.remi.parquet: no file matches {pattern}")
        return (
            pbegin
            | "CreateReMIFiles" >> beam.Create(files)
            | "ParseReMIFiles"
            >> beam.ParDo(ParseReMIFileFn(self._options)).with_outputs(DEAD, main="items")
        )
