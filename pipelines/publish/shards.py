"""The release's Parquet layout: Hugging Face ``datasets`` features, rows, shards, row groups.

One row per record. ``question``, ``answer`` and ``gt_answer`` are lists of segments
``{text, image}`` whose ``image`` is a ``datasets.Image`` (bytes embedded, ``path`` the record's
relative ``images/<sha256>.<ext>``), so ``load_dataset("parquet", ...)`` yields PIL images in
reading order. The features are declared in the Parquet schema metadata (key ``huggingface``),
which is where ``datasets`` and the Hugging Face viewer look for them. They are derived from
``record.schema.json`` (:func:`release_shape`, ``schemas.shape``) plus the release's declared
extensions (embedded images, image counts, ``annotation``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from schemas.errors import MmloomError
from schemas.shape import Node, record_shape
from schemas.store import ImageStore

SPLIT = "test"
ROWS_PER_GROUP = 100  # datasets' own choice for image data; keeps the viewer working
MAX_GROUP_BYTES = 100 * 1024 * 1024  # a row group of huge images is cut earlier
DEFAULT_MAX_SHARD_BYTES = 500 * 1000 * 1000

_S = Value("string")

# The release row is the record's shape (schemas.shape, from record.schema.json) with these
# declared differences, and nothing else written out by hand:
# - images are embedded: a segment's ``image`` is a ``datasets.Image`` (bytes and path);
# - ``schema_version`` is left out (the card and manifest carry it);
# - ``scores.clip`` keeps the column order of the first releases (min_score before pairs);
# - two counts follow ``instruction``, and the human decision ``annotation`` comes last.
IMAGE_SEGMENTS = ("question", "answer", "gt_answer")
DROPPED = ("schema_version",)
ORDER = {"scores.clip": ("scored", "model", "reason", "min_score", "pairs")}
COUNTS_AFTER = "instruction"
COUNTS: dict[str, Node] = {"n_images_question": "int32", "n_images_answer": "int32"}
ANNOTATION: dict[str, Node] = {
    "annotation": {
        "verdict": "string",
        "mean_score": "float64",
        "n_responses": "int32",
        "corrected": ("list", "string"),
        "edits": (
            "list",
            {"target": "string", "before": "string", "after": "string", "by": ("list", "string")},
        ),
    }
}


def release_shape(schema: dict[str, Any] | None = None) -> dict[str, Node]:
    """The release row's shape: the record's (``schema``: default ``record.schema.json``)
    with the declared differences above."""
    record = record_shape(
        overrides={f"{key}[].image": "image" for key in IMAGE_SEGMENTS}, order=ORDER, schema=schema
    )
    row: dict[str, Node] = {}
    for name, node in record.items():
        if name not in DROPPED:
            row[name] = node
        if name == COUNTS_AFTER:
            row.update(COUNTS)
    row.update(ANNOTATION)
    return row


def feature(node: Node) -> Any:
    """The ``datasets`` feature of a shape node (``json``: JSON text in a string)."""
    if isinstance(node, dict):
        return {name: feature(child) for name, child in node.items()}
    if isinstance(node, tuple):
        return List(feature(node[1]))
    if node == "image":
        return Image()
    return _S if node == "json" else Value(node)


FEATURES = Features({name: feature(node) for name, node in release_shape().items()})

# What each column holds, for the card.
COLUMN_DOCS = {
    "id": "routing-safe id (`SA_`, `PBL_`, `MSR_`, `IF_` + lower case), as MMIE's scorer expects",
    "category / field / subfield": "MMIE category, one of MMIE's 12 fields, mmloom subfield",
    "question_format": "`multiple_choice` or `open_ended`",
    "question / answer": "ordered segments `{text, image}`; `image` is an `Image` feature",
    "model / gt_answer": "MMIE's reference slot (`gt`; SA/PBL `gt_answer` is one null segment)",
    "options / answer_type / unit / precision / answer_value": "answer format (MSR); "
    "`answer_value` is JSON text",
    "instruction": "IF items: MIA-Bench-style sub-instructions, types and weights (facts as JSON)",
    "n_images_question / n_images_answer": "image counts",
    "images": "per-image metadata: sha256, size, format, source URI, licence, pHash",
    "provenance / source_metadata": "source, split, original id, licence, file; source fields "
    "as JSON text",
    "scores": "CLIP image-text scores (`scored` false when the build ran without CLIP); "
    "`blind`: a text-only model's option log-likelihoods or answer leakage without the images "
    "(null in builds made before it; `scored` false when the audit was off); `label`: a "
    "vision-language model's answer against the gold label (label-suspicion audit), null "
    "when that audit did not run",
    "audit": "validity-audit flags (`code`, `stage`, plain-words `reason`, the `figure` behind it "
    "and the `threshold` it crossed): evidence for review, never a verdict; null when not audited",
    "annotation": "human decision (`verdict`, mean 0-6 score, responses, `corrected`) or "
    "null; `edits`: each applied correction (`target`, the value `before` and `after` as JSON "
    "text, `by`: pseudonymous annotator ids)",
}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def to_row(record: dict[str, Any], read_image: Callable[[str], bytes]) -> dict[str, Any]:
    """One release row for a record's JSON view; ``read_image(path)`` returns the bytes."""

    def segments(segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "text": s["text"],
                "image": None
                if s["image"] is None
                else {
                    "bytes": read_image(s["image"]),
                    "path": s["image"],
                },
            }
            for s in segs
        ]

    instruction = record["instruction"]
    if instruction is not None:
        instruction = {
            "complexity": instruction["complexity"],
            "components": [
                {
                    "text": c["text"],
                    "type": c["type"],
                    "weight": c["weight"],
                    "facts": _json(c["facts"]),
                }
                for c in instruction["components"]
            ],
        }
    clip = record["scores"]["clip"]
    return {
        "id": record["id"],
        "category": record["category"],
        "field": record["field"],
        "subfield": record["subfield"],
        "question_format": record["question_format"],
        "question": segments(record["question"]),
        "answer": segments(record["answer"]),
        "model": record["model"],
        "gt_answer": segments(record["gt_answer"]),
        "options": record["options"],
        "answer_type": record["answer_type"],
        "unit": record["unit"],
        "precision": record["precision"],
        "answer_value": _json(record["answer_value"]),
        "instruction": instruction,
        "n_images_question": sum(1 for s in record["question"] if s["image"]),
        "n_images_answer": sum(1 for s in record["answer"] if s["image"]),
        "images": [{k: im[k] for k in FEATURES["images"].feature} for im in record["images"]],
        "provenance": record["provenance"],
        "source_metadata": _json(record["source_metadata"]),
        "scores": {
            "clip": {
                "scored": clip["scored"],
                "model": clip["model"],
                "reason": clip["reason"],
                "min_score": clip["min_score"],
                "pairs": clip["pairs"],
            },
            "blind": record["scores"].get("blind"),
            "label": record["scores"].get("label"),
        },
        "audit": record.get("audit"),
        "annotation": record.get("annotation"),
    }


def row_bytes(record: dict[str, Any], image_bytes: dict[str, int]) -> int:
    """An estimate of a row's stored size (images + text + metadata), for shard planning."""
    size = (
        4096 + len(_json(record["source_metadata"]) or "") + len(_json(record["instruction"]) or "")
    )
    for key in ("question", "answer", "gt_answer"):
        for s in record[key]:
            size += len(s["text"] or "") * 4
            if s["image"]:
                size += image_bytes[s["image"]]
    return size


def plan(sizes: list[int], max_shard_bytes: int) -> list[list[list[int]]]:
    """Shards -> row groups -> row indices, in order, within the row and byte limits."""
    shards: list[list[list[int]]] = []
    shard: list[list[int]] = []
    group: list[int] = []
    shard_size = group_size = 0  # closed groups of the shard / the open group
    for i, size in enumerate(sizes):
        if (shard or group) and shard_size + group_size + size > max_shard_bytes:
            shards.append([*shard, group] if group else shard)
            shard, group, shard_size, group_size = [], [], 0, 0
        elif group and (len(group) >= ROWS_PER_GROUP or group_size + size > MAX_GROUP_BYTES):
            shard.append(group)
            shard_size += group_size
            group, group_size = [], 0
        group.append(i)
        group_size += size
    if group:
        shard.append(group)
    if shard:
        shards.append(shard)
    return shards


def shard_name(index: int, count: int) -> str:
    return f"{SPLIT}-{index:05d}-of-{count:05d}.parquet"


def write_shards(
    records: list[dict[str, Any]],
    out_dir: str,
    store: ImageStore,
    image_bytes: dict[str, int],
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> list[tuple[str, int]]:
    """Write ``records`` (already in release order) as ``<out_dir>/test-*.parquet``.

    Image bytes are read from ``store`` one row group at a time (at most ``ROWS_PER_GROUP``
    rows or about ``MAX_GROUP_BYTES``), checked against their sha256, embedded, and released
    before the next group: memory stays bounded whatever the size of the release.

    Returns ``(file name, rows)`` per shard. An empty release still gets one (empty) shard so
    the split exists.

    Raises:
        MmloomError: a stored image does not match its sha256 (a damaged build).
    """
    os.makedirs(out_dir, exist_ok=True)
    schema = FEATURES.arrow_schema

    def read_image(path: str) -> bytes:
        data = store.get(path)
        if hashlib.sha256(data).hexdigest() != path.split("/")[-1].split(".")[0]:
            raise MmloomError(
                f"image {path} in {store.root} does not match its sha256; the build is "
                "damaged: rebuild it with `mmloom build --overwrite`"
            )
        return data

    shards = plan([row_bytes(r, image_bytes) for r in records], max_shard_bytes) or [[]]
    written: list[tuple[str, int]] = []
    for n, groups in enumerate(shards):
        name = shard_name(n, len(shards))
        rows = 0
        with pq.ParquetWriter(
            os.path.join(out_dir, name), schema, compression="snappy", write_statistics=False
        ) as writer:
            for group in groups:
                table = pa.Table.from_pylist(
                    [to_row(records[i], read_image) for i in group], schema=schema
                )
                writer.write_table(table, row_group_size=len(group))
                rows += len(group)
            if not groups:
                writer.write_table(schema.empty_table())
        written.append((name, rows))
    return written
