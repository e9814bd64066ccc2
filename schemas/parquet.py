"""The Parquet layout of records (``<build>/records/*.parquet``) and row <-> record conversion.

Columns mirror ``record.schema.json`` one to one. Values whose shape varies by source are
stored as JSON text (``answer_value``, ``instruction``, ``source_metadata``); images are a
list of structs of metadata whose ``path`` (``images/<sha256>.<ext>``) names the file in the
build's image store (``schemas.store``): no image bytes are stored in the records.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from schemas.records import Record

SEGMENT = pa.struct([("text", pa.string()), ("image", pa.string())])
OPTION = pa.struct([("label", pa.string()), ("text", pa.string())])
IMAGE = pa.struct(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("source_uri", pa.string()),
        ("license", pa.string()),
        ("phash", pa.string()),
    ]
)
PROVENANCE = pa.struct(
    [
        ("source", pa.string()),
        ("split", pa.string()),
        ("source_id", pa.string()),
        ("license", pa.string()),
        ("source_file", pa.string()),
    ]
)

RECORD_SCHEMA = pa.schema(
    [
        ("schema_version", pa.string()),
        ("id", pa.string()),
        ("category", pa.string()),
        ("field", pa.string()),
        ("subfield", pa.string()),
        ("question_format", pa.string()),
        ("question", pa.list_(SEGMENT)),
        ("answer", pa.list_(SEGMENT)),
        ("model", pa.string()),
        ("gt_answer", pa.list_(SEGMENT)),
        ("options", pa.list_(OPTION)),
        ("answer_type", pa.string()),
        ("unit", pa.string()),
        ("precision", pa.int64()),
        ("answer_value", pa.string()),  # JSON
        ("instruction", pa.string()),  # JSON
        ("images", pa.list_(IMAGE)),
        ("provenance", PROVENANCE),
        ("source_metadata", pa.string()),  # JSON
        ("scores", pa.string()),  # JSON
    ]
)

_JSON_COLUMNS = ("answer_value", "instruction", "source_metadata", "scores")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def to_row(record: Record) -> dict[str, Any]:
    """A finished record as a row of :data:`RECORD_SCHEMA`."""
    row = {name: record[name] for name in RECORD_SCHEMA.names}
    for name in _JSON_COLUMNS:
        row[name] = (
            None if record[name] is None and name == "answer_value" else _dumps(record[name])
        )
    return row


def from_row(row: dict[str, Any]) -> Record:
    """The record (its JSON view) for one Parquet row."""
    record = dict(row)
    for name in _JSON_COLUMNS:
        record[name] = None if row[name] is None else json.loads(row[name])
    record["images"] = [dict(im) for im in row["images"]]
    return record
