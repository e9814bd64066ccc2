"""ReadMathVista: MathVista problems (GitHub JSON or HF parquet) -> items + read dead letters."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from schemas.errors import RecordError, as_record_error
from schemas.fs import exists, glob_root, join, match
from sources.base import SourceReader, Unit
from sources.mathvista import parse

PARQUET_BATCH_ROWS = 32  # rows (and images) held in memory at once


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


class ReadMathVista(SourceReader):
    """Read MathVista problems into items, one per pid.

    Args:
        options: the ``sources.mathvista`` config block: ``root`` (GitHub layout) or ``parquet``
            (HF layout, path or glob), and ``splits`` (default ``["testmini"]``).

    Input: the pipeline root.
    Items: dicts with ``source``, ``source_id`` = pid, ``split``, ``source_file``,
        ``position``, ``layout``, ``problem``, ``query``, ``image_root``, ``image_bytes``; the
        main output ``drafts`` holds them restructured (``sources.base``), ``DEAD`` the read
        and restructure dead letters.
    Dead letters: ``malformed_file`` (a whole file that cannot be parsed, or an unreadable
        ``query.json``: one dead letter for it, and every problem is still read, without its
        query), ``malformed_record``, ``missing_key``, ``pid_mismatch``,
        ``split_not_selected``, ``no_gold_label``, ``unexpected_error``;
        ``not_a_regular_file``, ``file_too_large``, ``path_escapes_root`` (a file itself,
        ``query.json`` included; see ``sources.base``).
    Counters (namespace ``ReadMathVista``): ``files``, ``items``, ``dropped_<reason>``.

    Example::

        out = p | "ReadMathVista" >> ReadMathVista({"root": "/data/mathvista/data"})
        drafts, dead = out.drafts, out[DEAD]
    """

    source = parse.SOURCE
    namespace = "ReadMathVista"

    def list_files(self) -> list[str]:
        """The parquet path/glob, or ``<root>/<split>.json`` per selected split."""
        if parse.layout(self.options) == "parquet":
            return match(self.options["parquet"])
        return parse.split_files(self.options)

    def setup(self) -> None:
        self._splits = parse.selected_splits(self.options)

    def iter_units(self, path: str) -> Iterator[Unit]:
        if parse.layout(self.options) == "parquet":
            return self._parquet_units(path)
        return self._json_units(path)

    def side_files(self) -> list[str]:
        """``<root>/query.json`` when it exists (GitHub layout): optional prompts by pid."""
        if parse.layout(self.options) == "parquet":
            return []
        query_path = join(self.options["root"], "query.json")
        return [query_path] if exists(query_path) else []

    def load_side_file(self, path: str) -> dict[str, Any]:
        text = self.read_source_text(path, self.options["root"])
        return parse.parse_json_object(text, self.display(path))

    def _json_units(self, path: str) -> Iterator[Unit]:
        root = self.options["root"]
        try:
            text = self.read_source_text(path, root)
            data = parse.parse_json_object(text, self.display(path))
        except Exception as exc:  # the file is the unit
            raise as_record_error(exc) from exc
        # A broken query.json is its own dead letter (side_files); the problems go on without.
        queries: dict[str, Any] = {}
        for query_path in self.side:
            queries = self.side_file(query_path) or {}
        for position, (key, raw) in enumerate(data.items()):
            try:
                yield parse.problem_to_item(
                    raw,
                    key=str(key),
                    position=position,
                    source_file=path,
                    splits=self._splits,
                    query=queries.get(str(key)),
                    image_root=root,
                    layout_name="root",
                )
            except Exception as exc:  # every failure is a dead letter, never a crash
                yield as_record_error(exc, str(key))

    def _parquet_units(self, path: str) -> Iterator[Unit]:
        position = 0
        try:
            handle = self.open_source(path, glob_root(self.options["parquet"]))
        except Exception as exc:  # the file is the unit
            raise as_record_error(exc) from exc
        with handle:
            try:
                pfile = pq.ParquetFile(handle)
                names = set(pfile.schema_arrow.names)
                columns = [c for c in parse.PARQUET_COLUMNS if c in names]
                batches = pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns)
                for batch in batches:
                    for row in batch.to_pylist():
                        pid = row.get("pid")
                        sid = str(pid) if pid else f"{posixpath.basename(path)}#{position}"
                        try:
                            yield _row_to_item(row, position, path, self._splits)
                        except Exception as exc:  # every failure is a dead letter
                            yield as_record_error(exc, sid)
                        position += 1
            except Exception as exc:
                detail = f"{path}: cannot read parquet after {position} rows: {exc}"
                raise RecordError("malformed_file", detail) from exc
