"""``ReadReMI``: stream ReMI parquet files into one item per row."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from schemas.errors import RecordError, as_record_error
from schemas.fs import glob_root
from sources.base import SourceReader, Unit
from sources.remi import parse

BATCH_ROWS = 16  # rows per arrow batch: ReMI rows carry 2-6 embedded images (~200 KB each)

log = logging.getLogger(__name__)


class ReadReMI(SourceReader):
    """Read ReMI parquet files (``train.parquet``, ``test.parquet``, or the HF conversion).

    A file that cannot be opened as parquet or lacks the required columns is one
    ``malformed_file`` dead letter (the file is the unit); one that cannot be opened at all
    is one ``unreadable_file`` dead letter. Rows are read one row group at a time, in
    batches of ``batch_rows``; if a row group cannot be decoded, every row of it not yet
    emitted is an ``undecodable_row`` dead letter (row counts come from the footer) and
    reading goes on with the next row group.

    Args:
        options: the ``sources.remi`` config block: ``parquet`` (a path or glob; the split is
            the file stem, or the parent folder for ``<split>/0000.parquet``).

    Input: the pipeline root.
    Items: one dict per parquet row, with ``source``, ``source_id`` (``<split>/<row>``),
        ``split``, ``source_file``, ``row``, ``shard``, ``question``, ``label``, ``task`` and
        ``images`` {N: {bytes, path} | None}; the main output ``drafts`` holds them
        restructured (``sources.base``).
    Dead letters (``DEAD``, stage ``read``):
        ``unreadable_file`` (cannot be opened; one per file), ``not_a_regular_file``,
        ``file_too_large``, ``path_escapes_root`` (see ``sources.base``; one per file),
        ``malformed_file`` (not parquet,
        or missing/mistyped required columns; one per file), ``undecodable_row`` (a row of a
        row group that cannot be decoded), ``missing_key`` (null question, label or task).
    Counters (namespace ``ReadReMI``): ``files``, ``items``, ``dropped_<reason>``,
        ``warn_unknown_task``.

    Example:
        read = p | "ReadReMI" >> ReadReMI({"parquet": "/data/remi/*.parquet"})
    """

    source = parse.SOURCE
    namespace = "ReadReMI"
    batch_rows = BATCH_ROWS

    def list_files(self) -> list[str]:
        return self.match_option("parquet")

    def iter_units(self, path: str) -> Iterator[Unit]:
        try:
            handle = self.open_source(path, glob_root(self.options["parquet"]))
        except RecordError:  # not_a_regular_file, file_too_large, path_escapes_root
            raise
        except Exception as exc:
            detail = f"{path}: cannot open: {type(exc).__name__}: {exc}"
            raise RecordError("unreadable_file", detail) from exc
        with handle:
            yield from self._rows(handle, path)

    def _rows(self, handle: Any, path: str) -> Iterator[Unit]:
        import pyarrow.parquet as pq

        split, shard = parse.split_of(path)
        try:
            pfile = pq.ParquetFile(handle)
            numbers = parse.check_columns(pfile.schema_arrow, path)
            columns = [*parse.REQUIRED_COLUMNS, *(f"image_{n}" for n in numbers)]
        except RecordError:
            raise
        except Exception as exc:
            detail = f"{path}: not a readable parquet file: {type(exc).__name__}: {exc}"
            raise RecordError("malformed_file", detail) from exc
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
                        yield RecordError("undecodable_row", detail, source_id)
                    break
                for row in batch.to_pylist():
                    yield self._item(row, path, split, shard, base + done, numbers)
                    done += 1
            base += n_rows

    def _item(
        self, row: dict, path: str, split: str, shard: int, index: int, numbers: list[int]
    ) -> Unit:
        source_id = parse.row_key(split, shard, index)
        try:
            item = parse.make_item(
                row, path=path, split=split, shard=shard, index=index, image_numbers=numbers
            )
        except Exception as exc:
            return as_record_error(exc, source_id)
        if item["task"] not in parse.task_table():
            # Kept as an item: restructure turns it into an `unknown_task` dead letter.
            self.count("warn_unknown_task")
            log.warning("ReMI %s row %d: unknown task %r", path, index, item["task"])
        return item
