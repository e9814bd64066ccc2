"""Record validation: JSON Schema 2020-12 plus the rules a schema cannot state.

``validate_record(record)`` returns a list of :class:`Issue` (empty when valid). It accepts a
finished record with or without image bytes. The extra rules:

* the id starts with the record's own category token;
* every segment image is listed in ``images`` and every listed image is used;
* the question has at least one image (MMIE: 100% of questions do);
* (field, subfield) is in ``schemas/taxonomy.yaml``;
* IF weights sum to 10; a multiple-choice ``answer_value`` is one of the option labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from schemas import load_schema
from schemas.records import Record, json_view, segment_images
from schemas.taxonomy import is_known


@dataclass(frozen=True)
class Issue:
    pointer: str  # JSON pointer of the offending value, e.g. "/question/0/image"
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _pointer(path) -> str:
    return "".join(f"/{p}" for p in path)


def validate_against(name: str, instance: object) -> list[Issue]:
    """Validate ``instance`` against ``schemas/<name>.schema.json``."""
    return _issues(_validator(name), instance)


def validate_with(schema: dict[str, Any], instance: object) -> list[Issue]:
    """Validate ``instance`` against the JSON Schema ``schema`` (e.g. the build config schema
    composed with the sources' blocks, ``sources.config_schema()``)."""
    Draft202012Validator.check_schema(schema)
    return _issues(Draft202012Validator(schema), instance)


def _issues(validator: Draft202012Validator, instance: object) -> list[Issue]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [Issue(_pointer(e.absolute_path), e.message) for e in errors]


def validate_record(record: Record) -> list[Issue]:
    view = json_view(record)
    issues = validate_against("record", view)
    if issues:
        return issues
    if not view["id"].startswith(view["category"] + "_"):
        issues.append(Issue("/id", f"id must start with {view['category']}_"))
    paths = [im["path"] for im in view["images"]]
    if len(set(paths)) != len(paths):
        issues.append(Issue("/images", "an image is listed twice"))
    used = segment_images(view)
    for i, path in enumerate(used):
        if path not in paths:
            issues.append(Issue("/images", f"segment image {path} is not listed (use {i})"))
    for j, path in enumerate(paths):
        if path not in used:
            issues.append(Issue(f"/images/{j}", f"image {path} is listed but never used"))
    if not any(s["image"] for s in view["question"]):
        issues.append(Issue("/question", "the question has no image"))
    if not is_known(view["field"], view["subfield"]):
        issues.append(
            Issue("/subfield", f"({view['field']}, {view['subfield']}) is not in the taxonomy")
        )
    if view["instruction"] is not None:
        total = sum(c["weight"] for c in view["instruction"]["components"])
        if total != 10:
            issues.append(Issue("/instruction/components", f"weights sum to {total}, not 10"))
    if view["question_format"] == "multiple_choice":
        labels = [o["label"] for o in view["options"]]
        if view["answer_value"] not in labels:
            issues.append(
                Issue("/answer_value", f"{view['answer_value']!r} is not an option label {labels}")
            )
    return issues
