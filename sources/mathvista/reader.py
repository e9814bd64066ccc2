"""ReadMathVista: MathVista problems (GitHub JSON or HF parquet) -> items + read dead letters."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from schemas.deadletter import DEAD, STAGE_READ, dead_letter, from_exception
from schemas.errors import RecordError
from schemas.fs import exists, join, match, read_text
from schemas.metrics import inc
from sources.mathvista import parse

NAMESPACE = "ReadMathVista"
PARQUET_BATCH_ROWS = 32  # rows (and images) held in memory at once
Outcome = tuple[bool, dict[str, Any]]  # (is_dead_letter, item or dead letter)


def list_files(options: dict[str, Any]) -> list[str]:
    """The input files: the parquet path/glob, or ``<root>/<split>.json`` per selected split."""
    if parse.layout(options) == "parquet":
        return match(options["parquet"])
    return parse.split_files(options)


class ReadMathVistaFn(beam.DoFn):
    """Read one MathVista file; emit one item or one dead letter per problem."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def setup(self) -> None:
        self.splits = parse.selected_splits(self.options)
        self.layout = parse.layout(self.options)

    def process(self, path: str) -> Iterator[Any]:
        reader = self._parquet_units if self.layout == "parquet" else self._json_units
        for is_dead, outcome in reader(path):
            if is_dead:
                inc(NAMESPACE, f"dropped_{outcome['reason']}")
                yield beam.pvalue.TaggedOutput(DEAD, outcome)
            else:
                inc(NAMESPACE, "items")
                yield outcome

    @staticmethod
    def _unit(source_id: str, build: Callable[[], dict[str, Any]]) -> Outcome:
        """``(False, item)`` from ``build()``, or ``(True, dead letter)`` for what it raised."""
        try:
            return False, build()
        except Exception as exc:  # every failure is a dead letter, never a crash
            return True, from_exception(STAGE_READ, parse.SOURCE, source_id, exc)

    def _json_units(self, path: str) -> Iterator[Outcome]:
        root = self.options["root"]
        try:
            data = parse.parse_json_object(read_text(path), path)
            queries: dict[str, Any] = {}
            query_path = join(root, "query.json")
            if exists(query_path):
                queries = parse.parse_json_object(read_text(query_path), query_path)
        except Exception as exc:
            yield True, from_exception(STAGE_READ, parse.SOURCE, path, exc)
            return
        for position, (key, raw) in enumerate(data.items()):
            yield self._unit(
                str(key),
                lambda key=key, raw=raw, position=position: parse.problem_to_item(
                    raw,
                    key=str(key),
                    position=position,
                    source_file=path,
                    splits=self.splits,
                    query=queries.get(str(key)),
                    image_root=root,
                    layout_name="root",
                ),
            )

    def _parquet_units(self, path: str) -> Iterator[Outcome]:
        position = 0
        try:
            handle = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as exc:
            yield True, from_exception(STAGE_READ, parse.SOURCE, path, exc)
            return
        with handle:
            try:
                pfile = pq.ParquetFile(handle)
                names = set(pfile.schema_arrow.names)
                columns = [c for c in parse.PARQUET_COLUMNS if c in names]
                for batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
                    for row in batch.to_pylist():
                        pid = row.get("pid")
                        yield self._unit(
                            str(pid) if pid else f"{posixpath.basename(path)}#{position}",
                            lambda row=row, position=position: _row_to_item(
                                row, position, path, self.splits
                            ),
                        )
                        position += 1
            except Exception as exc:
                detail = f"{path}: cannot read parquet after {position} rows: {exc}"
                yield True, dead_letter(STAGE_READ, "malformed_file", parse.SOURCE, path, detail)


def _row_to_item(
    row: dict[str, Any], position: int, path: str, splits: tuple[str, ...]
) -> dict[str, Any]:
    """One parquet row (``decoded_image`` as a struct) -> item; raises RecordError."""
    decoded = row.get("decoded_image")
    if decoded is not None and not isinstance(decoded, dict):
        raise RecordError(
            "malformed_record", f"{path} row {position}: decoded_image is not a struct"
        )
    return parse.problem_to_item(
        row,
        key=None,
        position=position,
        source_file=path,
        splits=splits,
        query=row.get("query"),
        image_root=None,
        image_bytes=(decoded or {}).get("bytes") or None,
        layout_name="parquet",
    )


class ReadMathVista(beam.PTransform):
    """Read MathVista problems into items, one per pid.

    Args:
        options: the ``sources.mathvista`` config block: ``root`` (GitHub layout) or ``parquet``
            (HF layout, path or glob), and ``splits`` (default ``["testmini"]``).

    Input: the pipeline root.
    Output: a ``DoOutputsTuple``: main output ``items`` (dicts with ``source``, ``source_id``
        = pid, ``split``, ``source_file``, ``position``, ``layout``, ``problem``, ``query``,
        ``image_root``, ``image_bytes``) and read-stage dead letters under ``DEAD``.
    Dead letters: ``malformed_file`` (a whole file that cannot be parsed, or an unreadable
        ``query.json``), ``malformed_record``, ``missing_key``, ``pid_mismatch``,
        ``split_not_selected``, ``no_gold_label``.
    Counters (namespace ``ReadMathVista``): ``items``, ``dropped_<reason>``.

    Example::

        out = p | "ReadMathVista" >> ReadMathVista({"root": "/data/mathvista/data"})
        items, dead = out.items, out[DEAD]
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self.options = options

    def expand(self, pbegin):
        files = list_files(self.options)
        return (
            pbegin
            | "CreateMathVistaFiles" >> beam.Create(files)
            | "ParseMathVistaFiles"
            >> beam.ParDo(ReadMathVistaFn(self.options)).with_outputs(DEAD, main="items")
        )
