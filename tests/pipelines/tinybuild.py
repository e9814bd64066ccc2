"""A tiny build written by hand (pyarrow + ``write_manifest``), for tests that need a build
folder but not a pipeline run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.buildio import write_manifest
from schemas.parquet import RECORD_SCHEMA
from schemas.store import ImageStore, ref_for
from tools.sample_images import make_image


def tiny_row(i: int, store: ImageStore, source_metadata: str = "{}") -> dict:
    data = make_image(f"tiny-{i}")
    ref = ref_for(hashlib.sha256(data).hexdigest(), "jpg")
    store.put(ref, data)
    image = {"path": ref, "sha256": ref[7:71], "width": 64, "height": 64, "format": "jpeg",
             "source_uri": f"tiny/{i}.jpg", "license": "CC0", "phash": "0" * 16}  # fmt: skip
    return {
        "schema_version": "1.2.0",
        "id": f"MSR_tiny_test_{i}",
        "category": "MSR",
        "field": "Mathematics",
        "subfield": "Algebra",
        "question_format": "open_ended",
        "question": [{"text": f"question {i}", "image": None}, {"text": None, "image": ref}],
        "answer": [{"text": str(i), "image": None}],
        "model": "gt",
        "gt_answer": [{"text": str(i), "image": None}],
        "options": None,
        "answer_type": "text",
        "unit": None,
        "precision": None,
        "answer_value": json.dumps(str(i)),
        "instruction": "null",
        "images": [image],
        "provenance": {
            "source": "remi",
            "split": "test",
            "source_id": str(i),
            "license": "CC0",
            "source_file": "tiny.parquet",
        },
        "source_metadata": source_metadata,
        "scores": "{}",
        "audit": None,
    }


def write_tiny_build(
    out: Path,
    n: int = 6,
    shards: int = 2,
    manifest: bool = True,
    source_metadata: str = "{}",
    row_group_size: int = 1000,
) -> Path:
    """``n`` records in ``shards`` Parquet shards, their images, stats.json, a dead letter
    and (unless ``manifest`` is False) the completion manifest."""
    store = ImageStore(str(out))
    (out / "records").mkdir(parents=True, exist_ok=True)
    rows = [tiny_row(i, store, source_metadata) for i in range(n)]
    for k in range(shards):
        part = rows[k::shards]
        table = pa.Table.from_pylist(part, schema=RECORD_SCHEMA)
        path = out / "records" / f"records-{k:05d}-of-{shards:05d}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
    (out / "dead_letters").mkdir(exist_ok=True)
    dead = {"stage": "read", "reason": "malformed_row", "source": "remi", "source_id": "x",
            "detail": "", "unit": "record"}  # fmt: skip
    (out / "dead_letters" / "dead_letters-00000-of-00001.jsonl").write_text(json.dumps(dead) + "\n")
    stats = {
        "mmloom_version": "0.1.0",
        "build": "tiny",
        "config": "tiny.yaml",
        "config_sha256": "0" * 64,
        "sources": {
            "remi": {
                "read": n + 1,
                "written": n,
                "dropped": {"malformed_row": 1},
                "dropped_by_stage": {"read": {"malformed_row": 1}},
                "images_dropped": {},
                "reconciled": True,
            }
        },
        "totals": {"read": n + 1, "written": n, "dropped": {"malformed_row": 1}},
        "reconciled": True,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    if manifest:
        write_manifest(str(out))
    return out
