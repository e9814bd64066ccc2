"""``SQLSearchEngine``: argilla-server's SearchEngine backed by Argilla's own SQLite database.

Argilla 2.x keeps every record, response, suggestion, vector and metadata value in its SQL
database and mirrors them into Elasticsearch for searching. This engine searches the SQL
tables themselves, so they are the only copy and can never be out of date:

* filters (record status, id, external id, dates; metadata terms and ranges; response
  status per user and response values; suggestion value, score, agent and type), sorting,
  totals, progress and metadata metrics are SQL over ``records``, ``responses``,
  ``suggestions`` and the JSON ``metadata`` column, following the Elasticsearch engine's
  mapping (``argilla_server/search_engine/commons.py``) for what matches what;
* text search uses one FTS5 table per dataset, kept in a side file next to the database
  (``mmloom-search-index.db``) and maintained by ``index_records``/``delete_records``/
  ``delete_index``; it holds only tokenized field text and the record id;
* similarity search is exact cosine over the ``vectors`` table (cached per vector settings
  as a NumPy matrix, rebuilt when the table changes), scored like Elasticsearch's
  ``cosine`` similarity: ``(1 + cos) / 2``.

The index-maintenance methods for responses, suggestions, record status and vectors have
nothing to do: those values are read from the tables at query time.

Selected with ``ARGILLA_SEARCH_ENGINE=mmloom-sql``; needs a SQLite ``ARGILLA_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import numpy as np
from argilla_server.enums import (
    MetadataPropertyType,
    RecordSortField,
    ResponseStatusFilter,
    SimilarityOrder,
    SortOrder,
)
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from argilla_server.settings import settings
from sqlalchemy import make_url

from . import ENGINE_NAME
from .textquery import FTS_TOKENIZE, compile_query, document_text, restrict_to_column

INDEX_FILE_NAME = "mmloom-search-index.db"
MAX_TERMS_SIZE = 2**14  # the Elasticsearch engine's max_terms_size
BUSY_TIMEOUT_MS = 30_000
TEXT_FIELD_TYPES = ("text", "chat", "custom")

_VECTOR_CACHE: dict[str, tuple[tuple, list[str], np.ndarray]] = {}
_VECTOR_LOCK = threading.Lock()


def _hex(value: UUID | str) -> str:
    return value.hex if isinstance(value, UUID) else UUID(str(value)).hex


def _json_path(key: str) -> str:
    return "$." + json.dumps(key)


def _user_seed(user_id: UUID | str) -> int:
    """32-bit seed of a user's record order."""
    return int.from_bytes(hashlib.blake2b(_hex(user_id).encode(), digest_size=4).digest(), "big")


# Per-user pseudo-random value in [0, 1) for each record, like ES ``random_score`` seeded with
# the user id: a multiplicative hash of the row id, XOR the user's seed, hashed again. Pure
# SQL integer arithmetic (no Python call per row), so ordering 50,000 rows stays cheap.
_PERMUTED = "((r.rowid * 2654435761) % 4294967311)"
USER_RANDOM_SQL = (
    f"(((({_PERMUTED} | :seed) - ({_PERMUTED} & :seed)) * 40503) % 4294967291) / 4294967291.0"
)


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _number(text: Any) -> float | int | None:
    """SQL function ``mmloom_number``: the number a numeric string stands for, else NULL.

    Elasticsearch coerces strings such as ``"00003"`` or ``"0.5"`` in a ``long``/``float``
    field to numbers (``coerce`` is on by default); other strings are not numbers.
    """
    if not isinstance(text, str) or not _NUMBER_RE.fullmatch(text):
        return None
    if re.fullmatch(r"[+-]?\d+", text) and abs(int(text)) < 2**63:
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else None


def _numeric_sql(type_sql: str, value_sql: str, integer: bool) -> str:
    """SQL for a JSON value as Elasticsearch indexes it in a numeric field (NULL if none).

    Numbers stay numbers, numeric strings become numbers (:func:`_number`), anything else
    (booleans, other strings) is NULL. For ``integer`` properties (ES ``long``) fractions
    are truncated, as ES's coercion does.
    """
    expr = (
        f"(CASE {type_sql} WHEN 'integer' THEN {value_sql} WHEN 'real' THEN {value_sql} "
        f"WHEN 'text' THEN mmloom_number({value_sql}) END)"
    )
    return f"CAST({expr} AS INTEGER)" if integer else expr


def _float32(value: float | None) -> float | None:
    """``value`` rounded to 32 bits, as Elasticsearch stores a ``float`` field."""
    return None if value is None else float(np.float32(value))


def _date_bound(value: Any) -> str:
    """Turn a range bound for ``inserted_at``/``updated_at`` into the stored text format."""
    if isinstance(value, (int, float)):
        moment = dt.datetime.fromtimestamp(float(value) / 1000, tz=dt.timezone.utc)
    else:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


def _field_text(field_type: str, value: Any) -> str:
    if value is None:
        return ""
    if field_type == "chat" and isinstance(value, list):
        parts = []
        for message in value:
            if isinstance(message, dict):
                parts += [str(message.get("role") or ""), str(message.get("content") or "")]
        return document_text(" ".join(parts))
    return document_text(value if isinstance(value, str) else str(value))


def database_path() -> str:
    """Return the SQLite file of ``ARGILLA_DATABASE_URL`` or say how to fix the setting."""
    url = make_url(settings.database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        raise RuntimeError(
            f"The {ENGINE_NAME!r} search engine works on Argilla's SQLite database; "
            "ARGILLA_DATABASE_URL must be sqlite+aiosqlite:///PATH (got a "
            f"{url.drivername!r} URL). Use ARGILLA_SEARCH_ENGINE=elasticsearch for other databases."
        )
    return url.database


@SearchEngine.register(engine_name=ENGINE_NAME)
@dataclasses.dataclass
class SQLSearchEngine(SearchEngine):
    """Argilla search engine over the server's own SQLite tables (see module docstring)."""

    db_path: str
    index_path: str
    _conn: sqlite3.Connection | None = dataclasses.field(default=None, init=False, repr=False)

    @classmethod
    async def new_instance(cls) -> SQLSearchEngine:
        db_path = database_path()
        index_path = os.environ.get("MMLOOM_SEARCH_INDEX_PATH") or os.path.join(
            os.path.dirname(os.path.abspath(db_path)), INDEX_FILE_NAME
        )
        return cls(db_path=db_path, index_path=index_path)

    # -- connection ---------------------------------------------------------------------

    def _open_database(self) -> sqlite3.Connection:
        """Open Argilla's database (``db_path``); the text index is attached to it after."""
        return sqlite3.connect(
            self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self._open_database()
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.create_function("mmloom_number", 1, _number, deterministic=True)
            conn.execute("ATTACH DATABASE ? AS idx", (self.index_path,))
            conn.execute("PRAGMA idx.journal_mode = WAL")
            # The text index can always be rebuilt from the records (launcher ``reindex``),
            # so its commits need not wait for an fsync; WAL keeps it consistent.
            conn.execute("PRAGMA idx.synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS idx.datasets ("
                "dataset_id TEXT PRIMARY KEY, columns TEXT NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    async def _run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def close(self):
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def ping(self) -> bool:
        def _ping() -> bool:
            return self._connect().execute("SELECT 1").fetchone() == (1,)

        return await self._run(_ping)

    async def info(self) -> dict:
        return {
            "name": ENGINE_NAME,
            "distribution": ENGINE_NAME,
            "version": {"number": sqlite3.sqlite_version, "distribution": ENGINE_NAME},
            "database": "sqlite",
        }

    # -- text index ---------------------------------------------------------------------

    @staticmethod
    def _fts_table(dataset_id: str) -> str:
        return f"fts_{dataset_id}"

    def _indexed_columns(self, conn: sqlite3.Connection, dataset_id: str) -> dict | None:
        """Field name -> FTS column of the dataset's existing text index, or None."""
        row = conn.execute(
            "SELECT columns FROM idx.datasets WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def _wanted_columns(self, conn: sqlite3.Connection, dataset_id: str) -> dict[str, str]:
        """Field name -> FTS column for the dataset's current text fields."""
        fields = conn.execute(
            "SELECT name, settings FROM fields WHERE dataset_id = ? ORDER BY inserted_at, name",
            (dataset_id,),
        ).fetchall()
        names = [n for n, s in fields if json.loads(s).get("type") in TEXT_FIELD_TYPES]
        return {name: f"c{i}" for i, name in enumerate(names)}

    def _text_columns(self, conn: sqlite3.Connection, dataset_id: str) -> dict[str, str]:
        """Field name -> FTS column for a dataset, creating its FTS table on first use."""
        columns = self._indexed_columns(conn, dataset_id)
        if columns is not None:
            return columns
        columns = self._wanted_columns(conn, dataset_id)
        column_defs = ", ".join(columns.values()) or "c_empty"
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS idx.{self._fts_table(dataset_id)} USING fts5("
            f"record_id UNINDEXED, {column_defs}, tokenize = {json.dumps(FTS_TOKENIZE)})"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS idx.docs_{dataset_id} ("
            "rowid INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO idx.datasets (dataset_id, columns) VALUES (?, ?)",
            (dataset_id, json.dumps(columns)),
        )
        conn.commit()
        return columns

    def _field_types(self, conn: sqlite3.Connection, dataset_id: str) -> dict[str, str]:
        return {
            name: json.loads(s).get("type")
            for name, s in conn.execute(
                "SELECT name, settings FROM fields WHERE dataset_id = ?", (dataset_id,)
            )
        }

    async def create_index(self, dataset: Dataset):
        """Create the dataset's text index; an existing one is kept with its documents.

        If the dataset's text fields changed since the index was made (it was first used
        while the dataset was a draft), the index is rebuilt with the new columns and its
        documents are indexed again from the ``records`` table.
        """

        def _create():
            conn = self._connect()
            dataset_id = dataset.id.hex
            existing = self._indexed_columns(conn, dataset_id)
            if existing is None:
                self._text_columns(conn, dataset_id)
                return
            if existing == self._wanted_columns(conn, dataset_id):
                return
            indexed = [
                rid for (rid,) in conn.execute(f"SELECT record_id FROM idx.docs_{dataset_id}")
            ]
            self._drop_index(conn, dataset_id)
            self._text_columns(conn, dataset_id)
            for start in range(0, len(indexed), 500):
                chunk = indexed[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = [
                    (rid, json.loads(fields or "{}"))
                    for rid, fields in conn.execute(
                        f"SELECT id, fields FROM records WHERE id IN ({marks}) ORDER BY rowid",
                        chunk,
                    )
                ]
                self._index_rows(conn, dataset_id, rows)

        await self._run(_create)

    def _drop_index(self, conn: sqlite3.Connection, dataset_id: str) -> None:
        conn.execute(f"DROP TABLE IF EXISTS idx.{self._fts_table(dataset_id)}")
        conn.execute(f"DROP TABLE IF EXISTS idx.docs_{dataset_id}")
        conn.execute("DELETE FROM idx.datasets WHERE dataset_id = ?", (dataset_id,))
        conn.commit()

    async def delete_index(self, dataset: Dataset):
        await self._run(lambda: self._drop_index(self._connect(), dataset.id.hex))

    async def configure_metadata_property(self, dataset: Dataset, metadata_property):
        """Nothing to configure: metadata is filtered from the records' JSON column."""

    async def configure_index_vectors(self, vector_settings: VectorSettings):
        """Nothing to configure: vectors are read from the ``vectors`` table."""

    async def index_records(self, dataset: Dataset, records: Iterable[Record]):
        rows = [(record.id.hex, dict(record.fields or {})) for record in records]
        await self._run(lambda: self._index_rows(self._connect(), dataset.id.hex, rows))

    def _index_rows(
        self, conn: sqlite3.Connection, dataset_id: str, rows: list[tuple[str, dict]]
    ) -> None:
        """Put (record id hex, fields) into the dataset's text index, replacing old entries.

        One transaction and a few statements per 500 records (``executemany``), whatever
        the batch size.
        """
        columns = self._text_columns(conn, dataset_id)
        types = self._field_types(conn, dataset_id)
        fts, docs = f"idx.{self._fts_table(dataset_id)}", f"idx.docs_{dataset_id}"
        names = list(columns)
        column_list = ", ".join(["rowid", "record_id", *columns.values()])
        placeholders = ", ".join("?" for _ in range(len(names) + 2))
        with conn:
            for start in range(0, len(rows), 500):
                # a record given twice is indexed once, with its last fields
                chunk = list({row[0]: row for row in rows[start : start + 500]}.values())
                ids = [record_id for record_id, _ in chunk]
                marks = ", ".join("?" for _ in ids)
                conn.executemany(
                    f"INSERT OR IGNORE INTO {docs} (record_id) VALUES (?)", [(i,) for i in ids]
                )
                rowids = dict(
                    conn.execute(
                        f"SELECT record_id, rowid FROM {docs} WHERE record_id IN ({marks})", ids
                    )
                )
                conn.execute(
                    f"DELETE FROM {fts} WHERE rowid IN ({marks})", [rowids[i] for i in ids]
                )
                conn.executemany(
                    f"INSERT INTO {fts} ({column_list}) VALUES ({placeholders})",
                    [
                        (
                            rowids[record_id],
                            record_id,
                            *(_field_text(types.get(n, "text"), fields.get(n)) for n in names),
                        )
                        for record_id, fields in chunk
                    ],
                )

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]):
        ids = [record.id.hex for record in records]

        def _delete():
            conn = self._connect()
            dataset_id = dataset.id.hex
            self._text_columns(conn, dataset_id)
            with conn:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    conn.execute(
                        f"DELETE FROM idx.{self._fts_table(dataset_id)} WHERE rowid IN "
                        f"(SELECT rowid FROM idx.docs_{dataset_id} WHERE record_id IN ({marks}))",
                        chunk,
                    )
                    conn.execute(
                        f"DELETE FROM idx.docs_{dataset_id} WHERE record_id IN ({marks})", chunk
                    )

        await self._run(_delete)

    async def partial_record_update(self, record: Record, **update):
        """Nothing to do: record status and other columns are read from ``records``."""

    async def update_record_response(self, response: Response):
        """Nothing to do: responses are read from the ``responses`` table."""

    async def delete_record_response(self, response: Response):
        """Nothing to do: responses are read from the ``responses`` table."""

    async def update_record_suggestion(self, suggestion: Suggestion):
        """Nothing to do: suggestions are read from the ``suggestions`` table."""

    async def delete_record_suggestion(self, suggestion: Suggestion):
        """Nothing to do: suggestions are read from the ``suggestions`` table."""

    # -- progress and metrics -----------------------------------------------------------

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}

        def _progress():
            rows = self._connect().execute(
                "SELECT status, count(*) FROM records WHERE dataset_id = ? GROUP BY status",
                (dataset.id.hex,),
            )
            counts = {status: n for status, n in rows if n}
            return {"total": sum(counts.values()), **counts}

        return await self._run(_progress)

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}

        def _progress():
            rows = self._connect().execute(
                "SELECT s.status, count(*) FROM responses s JOIN records r ON r.id = s.record_id "
                "WHERE r.dataset_id = ? AND s.user_id = ? GROUP BY s.status",
                (dataset.id.hex, user.id.hex),
            )
            counts = {status: n for status, n in rows if n}
            return {"total": sum(counts.values()), **counts}

        return await self._run(_progress)

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        dataset_id = metadata_property.dataset_id.hex
        path = _json_path(metadata_property.name)
        # Scalars and the items of lists; an object at the key is no value (ES rejects it).
        source = (
            "FROM records r, json_each(r.metadata, ?) je WHERE r.dataset_id = ? "
            "AND je.type NOT IN ('object', 'array', 'null') "
            "AND json_type(r.metadata, ?) <> 'object'"
        )

        def _terms() -> TermsMetrics:
            conn = self._connect()
            (total,) = conn.execute(
                f"SELECT count(*) {source}", (path, dataset_id, path)
            ).fetchone()
            if total == 0:
                return TermsMetrics(total=0)
            rows = conn.execute(
                f"SELECT CAST(je.value AS TEXT) AS term, count(DISTINCT r.id) AS n {source} "
                "GROUP BY term ORDER BY n DESC, term ASC LIMIT ?",
                (path, dataset_id, path, min(total, MAX_TERMS_SIZE)),
            ).fetchall()
            return TermsMetrics(
                total=total, values=[TermsMetrics.TermCount(term=t, count=n) for t, n in rows]
            )

        integer = metadata_property.type == MetadataPropertyType.integer

        def _numeric():
            number = _numeric_sql("je.type", "je.value", integer)
            lo, hi = (
                self._connect()
                .execute(f"SELECT min({number}), max({number}) {source}", (path, dataset_id, path))
                .fetchone()
            )
            if integer:
                return IntegerMetadataMetrics(
                    min=None if lo is None else int(lo), max=None if hi is None else int(hi)
                )
            # ES keeps float properties as 32-bit floats, so their min/max come out rounded.
            return FloatMetadataMetrics(min=_float32(lo), max=_float32(hi))

        if metadata_property.type == MetadataPropertyType.terms:
            return await self._run(_terms)
        return await self._run(_numeric)

    # -- filters and sorting ------------------------------------------------------------

    def _question_id(self, conn: sqlite3.Connection, dataset_id: str, name: str) -> str | None:
        row = conn.execute(
            "SELECT id FROM questions WHERE dataset_id = ? AND name = ?", (dataset_id, name)
        ).fetchone()
        return row[0] if row else None

    def _metadata_type(self, conn: sqlite3.Connection, dataset_id: str, name: str) -> str | None:
        row = conn.execute(
            "SELECT settings FROM metadata_properties WHERE dataset_id = ? AND name = ?",
            (dataset_id, name),
        ).fetchone()
        return json.loads(row[0]).get("type") if row else None

    def _question_type(self, conn: sqlite3.Connection, dataset_id: str, name: str) -> str | None:
        row = conn.execute(
            "SELECT settings FROM questions WHERE dataset_id = ? AND name = ?", (dataset_id, name)
        ).fetchone()
        return json.loads(row[0]).get("type") if row else None

    @staticmethod
    def _value_condition(
        flt: Filter, column: str, params: list, kind: str = "value", column_params: Sequence = ()
    ) -> str:
        """SQL condition on ``column`` (terms: equal to any value; range: inside the bounds).

        ``column_params`` are the parameters of ``column`` itself, added each time it is used.
        """
        if isinstance(flt, TermsFilter):
            values = [str(v) for v in flt.values]
            if kind == "id":
                values = [_safe_hex(v) for v in values]
            params.extend([*column_params, *values])
            return f"CAST({column} AS TEXT) IN ({', '.join('?' for _ in values)})"
        if isinstance(flt, RangeFilter):
            parts = []
            for bound, op in ((flt.ge, ">="), (flt.le, "<=")):
                if bound is not None:
                    parts.append(f"{column} {op} ?")
                    params.extend(column_params)
                    params.append(_date_bound(bound) if kind == "date" else float(bound))
            return " AND ".join(parts) or "1"
        raise ValueError(f"Cannot process request for filter {flt}")

    def _filter_sql(
        self, conn: sqlite3.Connection, dataset_id: str, flt: Filter, params: list
    ) -> str:
        if isinstance(flt, AndFilter):
            parts = [self._filter_sql(conn, dataset_id, f, params) for f in flt.filters]
            return "(" + " AND ".join(parts or ["1"]) + ")"
        scope = flt.scope
        if isinstance(scope, RecordFilterScope):
            prop = str(scope.property)
            if prop in (RecordSortField.inserted_at, RecordSortField.updated_at):
                return "(" + self._value_condition(flt, f"r.{prop}", params, "date") + ")"
            kind = "id" if prop == RecordSortField.id else "value"
            column = {"id": "r.id", "external_id": "r.external_id", "status": "r.status"}[prop]
            return "(" + self._value_condition(flt, column, params, kind) + ")"
        if isinstance(scope, MetadataFilterScope):
            # Scalars (the usual case) via json_extract; lists match when any item does.
            path = _json_path(scope.metadata_property)
            many_column, one_column = "je.value", "json_extract(r.metadata, ?)"
            if isinstance(flt, RangeFilter):
                # Ranges compare numbers, numeric strings included (see _numeric_sql).
                integer = self._metadata_type(conn, dataset_id, scope.metadata_property) == (
                    MetadataPropertyType.integer
                )
                many_column = _numeric_sql("je.type", "je.value", integer)
                one_column = _numeric_sql("json_type(r.metadata, ?)", one_column, integer)
            # else terms compare any scalar as text (ES keyword).
            many_params: list = []
            many = self._value_condition(flt, many_column, many_params)
            one_params: list = []
            one = self._value_condition(
                flt, one_column, one_params, column_params=[path] * one_column.count("?")
            )
            params.extend([path, path, *many_params, path, *one_params])
            return (
                "(CASE WHEN json_type(r.metadata, ?) = 'array' THEN EXISTS (SELECT 1 FROM "
                "json_each(r.metadata, ?) je WHERE je.type NOT IN ('object', 'array', 'null') "
                f"AND {many}) WHEN json_type(r.metadata, ?) = 'object' THEN 0 "
                f"ELSE coalesce(({one}), 0) END)"
            )
        if isinstance(scope, SuggestionFilterScope):
            question_id = self._question_id(conn, dataset_id, scope.question)
            prop = str(scope.property or "value")
            if prop in ("agent", "type"):
                params.append(question_id)
                cond = self._value_condition(flt, f"sg.{prop}", params)
                return (
                    "EXISTS (SELECT 1 FROM suggestions sg WHERE sg.record_id = r.id "
                    f"AND sg.question_id = ? AND {cond})"
                )
            column = "sg.score" if prop == "score" else "sg.value"
            params.append(question_id)
            cond = self._value_condition(flt, "je.value", params)
            return (
                f"EXISTS (SELECT 1 FROM suggestions sg, json_each({column}) je "
                "WHERE sg.record_id = r.id AND sg.question_id = ? "
                f"AND je.type NOT IN ('object', 'array', 'null') AND {cond})"
            )
        if isinstance(scope, ResponseFilterScope):
            return self._response_filter_sql(flt, params)
        raise ValueError(f"Cannot process request for search scope {scope}")

    def _response_filter_sql(self, flt: Filter, params: list) -> str:
        scope: ResponseFilterScope = flt.scope
        user_cond = ""
        if scope.question:
            path = _json_path(scope.question) + ".value"
            params.append(path)
            if scope.user is not None:
                user_cond = " AND s.user_id = ?"
                params.append(scope.user.id.hex)
            cond = self._value_condition(flt, "je.value", params)
            return (
                'EXISTS (SELECT 1 FROM responses s, json_each(s."values", ?) je '
                f"WHERE s.record_id = r.id{user_cond} "
                f"AND je.type NOT IN ('object', 'array', 'null') AND {cond})"
            )
        if scope.property == "status" and isinstance(flt, TermsFilter):
            statuses = [str(v) for v in flt.values]
            parts = []
            if ResponseStatusFilter.pending in statuses:
                if scope.user is not None:
                    parts.append(
                        "NOT EXISTS (SELECT 1 FROM responses s "
                        "WHERE s.record_id = r.id AND s.user_id = ?)"
                    )
                    params.append(scope.user.id.hex)
                else:
                    parts.append("NOT EXISTS (SELECT 1 FROM responses s WHERE s.record_id = r.id)")
            others = [s for s in statuses if s != ResponseStatusFilter.pending]
            if not statuses and scope.user is None:
                return "1"  # no status and no user: every record, as ES's match_all
            if others or not parts:
                conds = []
                if others:
                    conds.append(f"s.status IN ({', '.join('?' for _ in others)})")
                    params.extend(others)
                if scope.user is not None:
                    conds.append("s.user_id = ?")
                    params.append(scope.user.id.hex)
                where = " AND ".join(["s.record_id = r.id", *conds])
                parts.append(f"EXISTS (SELECT 1 FROM responses s WHERE {where})")
            return "(" + " OR ".join(parts) + ")"
        raise ValueError(f"Cannot process filter scope {scope}")

    def _order_sql(
        self, conn: sqlite3.Connection, dataset_id: str, order: Order, params: list
    ) -> tuple[str, str]:
        """Return (sort key expression, ASC|DESC); the key's parameters go to ``params``."""
        descending = order.order == SortOrder.desc
        agg = "max" if descending else "min"
        direction = "DESC" if descending else "ASC"
        scope = order.scope
        if isinstance(scope, RecordFilterScope):
            expr = {"id": "r.id", "external_id": "r.external_id", "status": "r.status"}.get(
                str(scope.property), f"r.{scope.property}"
            )
            expr_params: list = []
        elif isinstance(scope, MetadataFilterScope):
            # Scalars (the usual case) via json_extract; lists via their min / max, like ES.
            # Numeric properties sort by number, numeric strings included (_numeric_sql).
            item, value = "je.value", "json_extract(r.metadata, ?)"
            kind = self._metadata_type(conn, dataset_id, scope.metadata_property)
            if kind in (MetadataPropertyType.integer, MetadataPropertyType.float):
                integer = kind == MetadataPropertyType.integer
                item = _numeric_sql("je.type", item, integer)
                value = _numeric_sql("json_type(r.metadata, ?)", value, integer)
            expr = (
                "(CASE json_type(r.metadata, ?) WHEN 'array' THEN "
                f"(SELECT {agg}({item}) FROM json_each(r.metadata, ?) je "
                "WHERE je.type NOT IN ('object', 'array', 'null')) "
                f"WHEN 'object' THEN NULL ELSE {value} END)"
            )
            expr_params = [_json_path(scope.metadata_property)] * expr.count("?")
        elif isinstance(scope, SuggestionFilterScope):
            question_id = self._question_id(conn, dataset_id, scope.question)
            prop = str(scope.property or "value")
            if prop in ("agent", "type"):
                expr = (
                    f"(SELECT {agg}(sg.{prop}) FROM suggestions sg "
                    "WHERE sg.record_id = r.id AND sg.question_id = ?)"
                )
            else:
                column = "sg.score" if prop == "score" else "sg.value"
                expr = (
                    f"(SELECT {agg}(je.value) FROM suggestions sg, json_each({column}) je "
                    "WHERE sg.record_id = r.id AND sg.question_id = ? "
                    "AND je.type NOT IN ('object', 'array', 'null'))"
                )
            expr_params = [question_id]
        elif isinstance(scope, ResponseFilterScope):
            user_cond, expr_params = "", []
            if scope.question:
                numeric = self._question_type(conn, dataset_id, scope.question) == "rating"
                fn = "avg" if numeric else agg
                expr_params.append(_json_path(scope.question) + ".value")
                if scope.user is not None:
                    user_cond = " AND s.user_id = ?"
                    expr_params.append(scope.user.id.hex)
                expr = (
                    f'(SELECT {fn}(je.value) FROM responses s, json_each(s."values", ?) je '
                    f"WHERE s.record_id = r.id{user_cond} "
                    "AND je.type NOT IN ('object', 'array', 'null'))"
                )
            else:
                if scope.user is not None:
                    user_cond = " AND s.user_id = ?"
                    expr_params.append(scope.user.id.hex)
                expr = (
                    f"(SELECT {agg}(s.status) FROM responses s WHERE s.record_id = r.id{user_cond})"
                )
        else:
            raise ValueError(f"Cannot process request for search scope {scope}")
        params.extend(expr_params)
        return expr, direction

    def _text_source(
        self, conn: sqlite3.Connection, dataset_id: str, query: TextQuery | str | None
    ) -> tuple[str, str, list, bool] | None:
        """Return (join clause, relevance expr, params, empty) for a text query, or None."""
        if query is None:
            return None
        if isinstance(query, str):
            query = TextQuery(q=query)
        compiled = compile_query(query.q)
        if compiled.kind == "none":
            return ("", "1.0", [], True)
        columns = self._text_columns(conn, dataset_id)
        fts = compiled.fts
        if query.field:
            column = columns.get(query.field)
            if column is None:  # image fields are not searchable, as with Elasticsearch
                return ("", "1.0", [], compiled.kind == "pos")
            fts = restrict_to_column(fts, column)
        elif not columns:
            return ("", "1.0", [], compiled.kind == "pos")
        table = f"idx.{self._fts_table(dataset_id)}"
        bare = self._fts_table(dataset_id)
        if compiled.kind == "pos":
            join = (
                f"JOIN (SELECT record_id AS mid, -bm25({bare}) AS rel FROM {table} "
                f"WHERE {bare} MATCH ?) m ON m.mid = r.id"
            )
            return (join, "m.rel", [fts], False)
        where = f"r.id NOT IN (SELECT record_id FROM {table} WHERE {bare} MATCH ?)"
        return (f"WHERE_EXTRA:{where}", "1.0", [fts], False)

    def _query_parts(
        self,
        conn: sqlite3.Connection,
        dataset: Dataset,
        query: TextQuery | str | None,
        flt: Filter | None,
    ) -> tuple[str, list, str] | None:
        """Return (FROM ... WHERE ..., params, relevance expression) or None for no match."""
        dataset_id = dataset.id.hex
        join, rel, params = "", "1.0", []
        where = ["r.dataset_id = ?"]
        text = self._text_source(conn, dataset_id, query)
        if text is not None:
            clause, rel, text_params, empty = text
            if empty:
                return None
            if clause.startswith("WHERE_EXTRA:"):
                where.append(clause.removeprefix("WHERE_EXTRA:"))
                where_params = text_params
            else:
                join, where_params = clause, []
                params.extend(text_params)
        else:
            where_params = []
        params.append(dataset_id)
        params.extend(where_params)
        if flt is not None:
            where.append(self._filter_sql(conn, dataset_id, flt, params))
        return (f"FROM records r {join} WHERE {' AND '.join(where)}", params, rel)

    # -- search -------------------------------------------------------------------------

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,
    ) -> SearchResponses:
        def _search() -> SearchResponses:
            conn = self._connect()
            parts = self._query_parts(conn, dataset, query, filter)
            if parts is None:
                return SearchResponses(items=[], total=0)
            source, params, rel = parts
            key_params: list = []
            if sort:
                keys, order_by = [], []
                for n, order in enumerate(sort):
                    expr, direction = self._order_sql(conn, dataset.id.hex, order, key_params)
                    keys.append(f"{expr} AS k{n}")
                    # Elasticsearch puts documents without a value last in both directions.
                    order_by += [f"k{n} IS NULL", f"k{n} {direction}"]
                select = ", ".join(["NULL AS score", *keys])
            else:
                score = rel
                if user_id is not None:
                    seed = str(_user_seed(user_id))
                    score = f"({rel}) * " + USER_RANDOM_SQL.replace(":seed", seed)
                select = f"{score} AS score"
                order_by = ["score DESC"]
            order_by.append("r.rowid ASC")
            sql = (
                f"SELECT r.id, count(*) OVER () AS total, {select} {source} "
                f"ORDER BY {', '.join(order_by)} LIMIT ? OFFSET ?"
            )
            rows = conn.execute(sql, [*key_params, *params, limit, offset]).fetchall()
            if rows:
                total = rows[0][1]
            else:  # offset past the end: count separately
                (total,) = conn.execute(f"SELECT count(*) {source}", params).fetchone()
            items = [
                SearchResponseItem(
                    record_id=UUID(hex=row[0]), score=None if row[2] is None else float(row[2])
                )
                for row in rows
            ]
            return SearchResponses(items=items, total=total)

        return await self._run(_search)

    # -- similarity ---------------------------------------------------------------------

    def _vector_matrix(
        self, conn: sqlite3.Connection, vector_settings_id: str, dimensions: int
    ) -> tuple[list[str], np.ndarray]:
        signature = conn.execute(
            "SELECT count(*), max(updated_at), max(inserted_at) FROM vectors "
            "WHERE vector_settings_id = ?",
            (vector_settings_id,),
        ).fetchone()
        with _VECTOR_LOCK:
            cached = _VECTOR_CACHE.get(vector_settings_id)
            if cached is not None and cached[0] == tuple(signature):
                return cached[1], cached[2]
        ids: list[str] = []
        rows: list[list[float]] = []
        for record_id, value in conn.execute(
            "SELECT record_id, value FROM vectors WHERE vector_settings_id = ?",
            (vector_settings_id,),
        ):
            vector = json.loads(value)
            if len(vector) == dimensions:
                ids.append(record_id)
                rows.append(vector)
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), dimensions)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms == 0, 1, norms)
        with _VECTOR_LOCK:
            _VECTOR_CACHE[vector_settings_id] = (tuple(signature), ids, matrix)
        return ids, matrix

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError(
                "Must provide either vector value or record to compute the similarity search"
            )
        vector_value = value
        excluded = None
        if not vector_value:
            excluded = record.id.hex
            vector_value = record.vector_value_by_vector_settings(vector_settings)
        if not vector_value:
            raise ValueError("Cannot find a vector value to apply with provided info")

        def _similar() -> SearchResponses:
            conn = self._connect()
            ids, matrix = self._vector_matrix(
                conn, vector_settings.id.hex, vector_settings.dimensions
            )
            if not ids:
                return SearchResponses(items=[], total=0)
            allowed: set[str] | None = None
            if filter is not None or query is not None:
                parts = self._query_parts(conn, dataset, query, filter)
                if parts is None:
                    return SearchResponses(items=[], total=0)
                source, params, _ = parts
                allowed = {rid for (rid,) in conn.execute(f"SELECT r.id {source}", params)}
            else:
                allowed = {
                    rid
                    for (rid,) in conn.execute(
                        "SELECT id FROM records WHERE dataset_id = ?", (dataset.id.hex,)
                    )
                }
            mask = np.fromiter(
                (rid in allowed and rid != excluded for rid in ids), dtype=bool, count=len(ids)
            )
            q = np.asarray(vector_value, dtype=np.float32)
            norm = float(np.linalg.norm(q)) or 1.0
            cosine = matrix @ (q / norm)
            if order == SimilarityOrder.least_similar:
                cosine = -cosine
            scores = (1.0 + cosine) / 2.0
            candidates = np.flatnonzero(mask)
            if candidates.size == 0:
                return SearchResponses(items=[], total=0)
            k = min(max_results, candidates.size)
            top = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
            items = [
                SearchResponseItem(record_id=UUID(hex=ids[i]), score=float(scores[i]))
                for i in top
                if threshold is None or scores[i] >= threshold
            ]
            return SearchResponses(items=items, total=int(k))

        return await self._run(_similar)


def _safe_hex(value: str) -> str:
    try:
        return UUID(str(value)).hex
    except ValueError:
        return str(value)


__all__: Sequence[str] = ["SQLSearchEngine", "database_path"]
