"""Argilla dataset settings generated from the rubric, and the Argilla record of an mmloom record.

Each category gets its own dataset, ``<name>-<category in lower case>`` (the rubric asks
different questions per category). A dataset has:

* one custom field, ``item``: the interleaved HTML from :mod:`annotation.render`, inserted by
  the template ``{{{record.fields.item.html}}}`` (already escaped by the renderer);
* the category's rubric questions, in order (rating, label, multi-label, text);
* metadata for filtering: ``category``, ``field``, ``subfield``, ``source``,
  ``question_format`` (terms), ``clip_min_score`` (float, absent when not scored),
  ``n_images`` (integer), and ``push_sha`` (hidden; lets a second push skip unchanged records);
* ``TaskDistribution(min_submitted=overlap)``: a record is complete after ``overlap``
  submitted responses.

Record ids are the mmloom ids themselves (Argilla's ``external_id``), so logging a record
again updates it instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import argilla as rg

from annotation.render import image_count, render_record
from annotation.rubric import Question, Rubric

ITEM_FIELD = "item"
TEMPLATE = "{{{record.fields.item.html}}}"
SUGGESTION_AGENT = "mmloom-build"
TERMS_METADATA = ("category", "field", "subfield", "source", "question_format")


def dataset_name(base: str, category: str) -> str:
    """Argilla dataset name of ``category`` within the annotation round ``base``."""
    return f"{base}-{category.lower()}"


def _question(q: Question, client: rg.Argilla) -> rg.QuestionType:
    common = {
        "name": q.name,
        "title": q.title,
        "description": q.description or None,
        "required": q.required,
        "client": client,
    }
    if q.kind == "rating":
        return rg.RatingQuestion(values=list(q.values), **common)
    if q.kind == "label":
        visible = min(len(q.labels), 20) if len(q.labels) > 3 else None
        return rg.LabelQuestion(labels=list(q.labels), visible_labels=visible, **common)
    if q.kind == "multi_label":
        return rg.MultiLabelQuestion(labels=list(q.labels), **common)
    return rg.TextQuestion(use_markdown=False, **common)


def guidelines(rubric: Rubric, category: str) -> str:
    """Markdown guidelines shown in Argilla: the protocol and every question's description."""
    lines = [f"# mmloom rubric: {category} items", "", rubric.protocol, ""]
    for q in rubric.for_category(category):
        lines.append(f"- **{q.title}**: {q.description}" if q.description else f"- **{q.title}**")
    return "\n".join(lines)


def build_settings(
    rubric: Rubric, category: str, client: rg.Argilla, overlap: int | None = None
) -> rg.Settings:
    """Argilla settings for the ``category`` dataset of ``rubric``.

    ``client`` is the connection the settings are created with (the SDK's metadata
    properties need one; without it the SDK would build a default client from the
    environment).
    """
    metadata = [
        rg.TermsMetadataProperty(name, title=name.replace("_", " "), client=client)
        for name in TERMS_METADATA
    ]
    metadata += [
        rg.FloatMetadataProperty("clip_min_score", title="CLIP min score", client=client),
        rg.IntegerMetadataProperty("n_images", title="images", client=client),
        rg.TermsMetadataProperty(
            "push_sha", title="push sha", visible_for_annotators=False, client=client
        ),
    ]
    return rg.Settings(
        guidelines=guidelines(rubric, category),
        fields=[
            rg.CustomField(
                ITEM_FIELD, title="Item", template=TEMPLATE, advanced_mode=False, _client=client
            )
        ],
        questions=[_question(q, client) for q in rubric.for_category(category)],
        metadata=metadata,
        distribution=rg.TaskDistribution(min_submitted=overlap or rubric.overlap),
        allow_extra_metadata=False,
    )


def record_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """Filterable metadata of an mmloom record (None values left out)."""
    clip = (record.get("scores") or {}).get("clip") or {}
    meta = {
        "category": record["category"],
        "field": record["field"],
        "subfield": record["subfield"],
        "source": (record.get("provenance") or {}).get("source"),
        "question_format": record.get("question_format"),
        "clip_min_score": clip.get("min_score") if clip.get("scored") else None,
        "n_images": image_count(record),
    }
    return {k: v for k, v in meta.items() if v is not None}


def argilla_record(
    record: dict[str, Any], rubric: Rubric, image_url: Callable[[str], str]
) -> rg.Record:
    """The Argilla record of an mmloom record: rendered item, metadata, taxonomy suggestions."""
    html = render_record(record, image_url)
    metadata = record_metadata(record)
    names = set(rubric.categories[record["category"]])
    suggestions = [
        rg.Suggestion(q.name, record[q.taxonomy], agent=SUGGESTION_AGENT)
        for q in rubric.questions.values()
        if q.taxonomy and q.name in names and record[q.taxonomy] in q.labels
    ]
    digest = hashlib.sha256(
        json.dumps(
            {
                "html": html,
                "metadata": metadata,
                "suggestions": [(s.question_name, s.value) for s in suggestions],
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]
    return rg.Record(
        id=record["id"],
        fields={ITEM_FIELD: {"html": html}},
        metadata={**metadata, "push_sha": digest},
        suggestions=suggestions,
    )


def question_names(dataset: rg.Dataset) -> list[str]:
    """The question names of an existing dataset, in order."""
    return [q.name for q in dataset.settings.questions]
