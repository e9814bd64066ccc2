"""The Parquet layout of records (``<build>/records/*.parquet``) and row <-> record conversion.

Columns mirror ``record.schema.json`` one to one: :data:`RECORD_SCHEMA` is derived from it
(``schemas.shape``). Values whose shape varies by source are stored as JSON text
(``answer_value``, ``instruction``, ``source_metadata``, ``scores``); images are a
list of structs of metadata whose ``path`` (``images/<sha256>.<ext>``) names the file in the
build's image store (``schemas.store``): no image bytes are stored in the records.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from schemas.errors import RecordError
from schemas.jsonsafe import replace_non_finite
from schemas.records import Record
from schemas.shape import arrow_schema, json_columns, record_shape

# the build stores the record's shape (schemas.shape) with two objects kept whole as JSON text,
# as the record has them; answer_value and source_metadata are JSON text by their own shape
RECORD_SHAPE = record_shape(overrides={"instruction": "json", "scores": "json"})
RECORD_SCHEMA = arrow_schema(RECORD_SHAPE)

_JSON_COLUMNS = json_columns(RECORD_SHAPE)


# source_metadata gains this key when non-finite numbers in it were replaced by null
NON_FINITE_NOTE = "mmloom_non_finite_replaced"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


def to_row(record: Record) -> dict[str, Any]:
    """A finished record as a row of :data:`RECORD_SCHEMA`."""
    row = {name: record[name] for name in RECORD_SCHEMA.names}
    for name in _JSON_COLUMNS:
        row[name] = (
            None if record[name] is None and name == "answer_value" else _dumps(record[name])
        )
    return row


def checked_row(record: Record) -> dict[str, Any]:
    """A finished record as a row that is sure to write: every value within its column's type.

    Non-finite numbers (NaN, Infinity) in ``source_metadata`` become null, and the metadata
    gains ``mmloom_non_finite_replaced``: the JSON pointers of the values replaced (verbatim
    source data, kept for traceability only). Anywhere else they reject the record.

    Raises:
        RecordError: ``non_finite_value`` (NaN/Infinity outside source_metadata),
        ``value_out_of_range`` (a number its integer column cannot hold, e.g. precision 1e308),
        ``invalid_utf8`` (a string that cannot be encoded, e.g. a lone surrogate), or
        ``unwritable_value`` (any other value the Parquet schema does not take).
    """
    metadata, replaced = replace_non_finite(record.get("source_metadata"))
    if replaced:
        record = {**record, "source_metadata": {**metadata, NON_FINITE_NOTE: replaced}}
    for name in RECORD_SCHEMA.names:
        _, bad = replace_non_finite(record.get(name))
        if bad:
            where = ", ".join(f"/{name}{p}" for p in bad[:5])
            raise RecordError("non_finite_value", f"NaN or Infinity at {where}")
    try:
        row = to_row(record)
    except (TypeError, ValueError) as exc:
        raise RecordError("unwritable_value", f"{type(exc).__name__}: {exc}") from exc
    for field in RECORD_SCHEMA:
        value = row[field.name]
        try:
            pa.array([value], type=field.type)
        except UnicodeEncodeError as exc:
            raise RecordError("invalid_utf8", f"/{field.name}: {exc}") from exc
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            message = str(exc).lower()
            integral = pa.types.is_integer(field.type) or "to int" in message
            overflow = isinstance(exc, OverflowError) or "out of bounds" in message
            numeric = _has_number(value) and (integral or overflow)
            reason = "value_out_of_range" if numeric else "unwritable_value"
            shown = repr(value)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise RecordError(reason, f"/{field.name} = {shown}: {exc}") from exc
    return row


def _has_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_number(v) for v in value)
    return False


def from_row(row: dict[str, Any]) -> Record:
    """The record (its JSON view) for one Parquet row."""
    record = dict(row)
    for name in _JSON_COLUMNS:
        record[name] = None if row[name] is None else json.loads(row[name])
    record["images"] = [dict(im) for im in row["images"]]
    return record
