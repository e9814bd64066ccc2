"""Toy: pure parsing and restructuring (one problem line -> one MSR draft record)."""

from __future__ import annotations

import json
import os
from typing import Any

from schemas.errors import PipelineConfigError, RecordError
from schemas.records import ImageRefs, make_id, new_record, provenance
from sources.base import source_options

SOURCE = "toy"
CATEGORY = "MSR"
LICENSE = "CC0 1.0 (made for mmloom's tests)"
KEYS = ("id", "question", "answer", "image")


def parse_line(line: str, where: str) -> dict[str, Any]:
    """One ``toy.jsonl`` line -> its problem; RecordError ``malformed_json`` / ``missing_key``."""
    try:
        problem = json.loads(line)
    except ValueError as exc:
        raise RecordError("malformed_json", f"{where}: {exc}") from None
    if not isinstance(problem, dict):
        raise RecordError("malformed_json", f"{where}: not an object")
    missing = [k for k in KEYS if not isinstance(problem.get(k), str) or not problem[k]]
    if missing:
        raise RecordError("missing_key", f"{where}: {', '.join(missing)} missing or empty")
    return problem


def restructure(item: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One toy item -> a draft MSR record: the question and its image, the short answer.

    Raises:
        RecordError: ``odd_answer`` when the answer is not a whole number.
    """
    options = source_options(SOURCE, options)
    answer = item["answer"]
    if not answer.strip().isdigit():
        raise RecordError("odd_answer", f"{item['source_id']}: answer {answer!r} is no number")
    refs = ImageRefs()
    ref = refs.add(item["image_uri"], license=LICENSE, root=item["image_root"])
    text = f"{options['prefix']}{item['question']}" if options["prefix"] else item["question"]
    return new_record(
        record_id=make_id(CATEGORY, SOURCE, item["source_id"]),
        category=CATEGORY,
        field="Mathematics",
        subfield="Visual Counting",
        question=[{"text": text, "image": None}, {"text": None, "image": ref}],
        answer=[{"text": answer, "image": None}],
        gt_answer=[{"text": answer, "image": None}],
        images=refs,
        provenance=provenance(SOURCE, "test", item["source_id"], LICENSE, item["source_file"]),
        answer_type="integer",
        answer_value=int(answer),
        source_metadata={"image": item["image"]},
    )


def check_options(options: dict[str, Any]) -> None:
    """The block ``sources.toy``: ``data`` (the jsonl file) and ``images`` (a folder) exist."""
    for key in ("data", "images"):
        if not options.get(key):
            raise PipelineConfigError(f"sources.{SOURCE}: {key} is required")
    if not os.path.exists(options["data"]):
        raise PipelineConfigError(f"sources.{SOURCE}.data: {options['data']} does not exist")
