"""Argilla dataset settings generated from the rubric, and the Argilla record of an mmloom record.

Each category gets its own dataset, ``<name>-<category in lower case>`` (the rubric asks
different questions per category). A dataset has:

* one custom field, ``item``: the interleaved HTML from :mod:`annotation.render`, inserted by
  the template ``{{{record.fields.item.html}}}`` (already escaped by the renderer);
* the category's rubric questions, in order (rating, label, multi-label, text); per-item
  multi-label choices (``image_N``, ``sub_N``, ``check_N``, ``flag_N``) are sized to the
  largest item pushed when the dataset is created (:func:`item_sizes`, :func:`sized_labels`).
  Argilla cannot change the options of an existing question, so a later push with a larger item
  keeps the dataset's choices; push reports such records as ``oversized`` and their HTML asks
  annotators to name the extra images or checks in the comment;
* metadata for filtering: ``category``, ``field``, ``subfield``, ``source``,
  ``question_format`` (terms), ``clip_min_score`` (float, absent when not scored),
  ``n_images`` (integer), ``audit_flags`` (integer: the record's validity-audit flags, 0 when
  audited and nothing was found, absent when not audited; sorting by it, descending, puts
  flagged items first), ``audit_codes`` (terms: the flag codes, flag 1 first; pull reads
  flag N's code from it), and ``push_sha`` (hidden; lets a second push skip unchanged records);
* ``TaskDistribution(min_submitted=overlap)``: a record is complete after ``overlap``
  submitted responses.

Record ids are the mmloom ids themselves (Argilla's ``external_id``), so logging a record
again updates it instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import argilla as rg

from annotation.render import audit_flags, image_count, render_record
from annotation.rubric import Question, Rubric
from schemas.taxonomy import taxonomy

ITEM_FIELD = "item"
TEMPLATE = "{{{record.fields.item.html}}}"
SUGGESTION_AGENT = "mmloom-build"
TERMS_METADATA = ("category", "field", "subfield", "source", "question_format")
PER_ITEM = re.compile(r"^(image|sub|check|flag)_([0-9]+)$")
AUDIT_SORT = "audit_flags"  # the metadata property annotators sort by to see flagged items first
# the audit metadata properties: (name, title, Argilla type)
AUDIT_METADATA = (
    (AUDIT_SORT, "audit flags", "integer"),
    ("audit_codes", "audit flag codes", "terms"),
)
MIN_LABELS = 2  # Argilla's minimum number of options of a label question


def item_sizes(record: dict[str, Any]) -> dict[str, int]:
    """How many per-item choices ``record`` needs: ``image`` (numbered images), ``sub`` and
    ``check`` (IF sub-instructions; the reference checklist has one check per
    sub-instruction), ``flag`` (validity-audit flags)."""
    subs = len((record.get("instruction") or {}).get("components") or [])
    return {
        "image": image_count(record),
        "sub": subs,
        "check": subs,
        "flag": len(audit_flags(record)),
    }


def max_sizes(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The largest :func:`item_sizes` over ``records``."""
    out = {"image": 0, "sub": 0, "check": 0, "flag": 0}
    for r in records:
        for k, v in item_sizes(r).items():
            out[k] = max(out[k], v)
    return out


def per_item_kind(q: Question) -> str | None:
    """``image``, ``sub`` or ``check`` when every label of ``q`` is ``<kind>_N``, else None."""
    kinds = {m.group(1) if m else None for m in map(PER_ITEM.match, q.labels)}
    return next(iter(kinds)) if q.kind == "multi_label" and len(kinds) == 1 else None


def sized_labels(q: Question, sizes: Mapping[str, int] | None) -> tuple[str, ...]:
    """The labels of ``q`` for a dataset whose largest item has ``sizes`` (the rubric's own
    labels when ``q`` is not per-item or ``sizes`` is None)."""
    kind = per_item_kind(q)
    if kind is None or sizes is None:
        return q.labels
    n = max(MIN_LABELS, sizes.get(kind, 0))
    return tuple(f"{kind}_{i}" for i in range(1, n + 1))


def dataset_name(base: str, category: str) -> str:
    """Argilla dataset name of ``category`` within the annotation round ``base``."""
    return f"{base}-{category.lower()}"


def _question(
    q: Question, client: rg.Argilla, sizes: Mapping[str, int] | None = None
) -> rg.QuestionType:
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
        return rg.MultiLabelQuestion(labels=list(sized_labels(q, sizes)), **common)
    return rg.TextQuestion(use_markdown=False, **common)


def guidelines(rubric: Rubric, category: str) -> str:
    """Markdown guidelines shown in Argilla: the protocol and every question's description."""
    lines = [f"# mmloom rubric: {category} items", "", rubric.protocol, ""]
    questions = rubric.for_category(category)
    for q in questions:
        lines.append(f"- **{q.title}**: {q.description}" if q.description else f"- **{q.title}**")
    lines += [
        "",
        "## Verdicts that need an edit",
        "",
        "Choose **fix** only with a correction above: the field or subfield, or the corrected "
        "answer text or weights (written in full, as they should read); describe anything else "
        "in the comment. A fix is applied only when every annotator who chose fix gave the "
        "same correction. A fix without an applicable correction, a field/subfield pair that "
        "is not in the taxonomy, annotators who disagree on the correction, or weights that "
        "are not whole numbers summing to 10, hold the item back (needs_edit): it is not "
        "published until a second round settles it, and your comments are shown to that round.",
    ]
    if rubric.veto is not None and rubric.veto[0] in rubric.categories.get(category, ()):
        question, labels = rubric.veto
        lines += [
            "",
            f"An item that any annotator marks **{question}: {' / '.join(labels)}** is left out "
            "of the release whatever the verdict.",
        ]
    if rubric.audit_question and rubric.audit_question in rubric.categories.get(category, ()):
        lines += [
            "",
            "## Audit flags",
            "",
            "An automatic validity audit flags items that may be answerable without their "
            "images, carry an exploitable answer pattern, or be mislabeled. A flagged item "
            "lists its flags in a yellow box above the question, numbered flag 1, flag 2, ... "
            "with the reason in plain words. Flags are evidence for you to check, not verdicts: "
            f"in **{rubric.questions[rubric.audit_question].title}** tick flag_N when flag N "
            "holds and leave it unticked to clear it; then give the verdict on the item as a "
            "whole (a confirmed flag does not remove an item by itself). To see flagged items "
            f"first, sort the dataset by the metadata **{AUDIT_SORT.replace('_', ' ')}**, "
            "descending (the link your lead sends does this).",
        ]
    if any(q.taxonomy == "subfield" for q in questions):
        lines += [
            "",
            "## Subfields of each field",
            "",
            "Argilla cannot narrow the subfield list to the field you chose; pick a subfield "
            "of that field from this table (any other pair sends the item back):",
            "",
        ]
        lines += [f"- **{fld}**: {', '.join(subs)}" for fld, subs in taxonomy().items()]
    return "\n".join(lines)


def build_settings(
    rubric: Rubric,
    category: str,
    client: rg.Argilla,
    overlap: int | None = None,
    sizes: Mapping[str, int] | None = None,
) -> rg.Settings:
    """Argilla settings for the ``category`` dataset of ``rubric``.

    ``client`` is the connection the settings are created with (the SDK's metadata
    properties need one; without it the SDK would build a default client from the
    environment). ``sizes`` (:func:`max_sizes` of the records pushed) sizes the per-item
    choices; None keeps the rubric's labels.
    """
    metadata = [
        rg.TermsMetadataProperty(name, title=name.replace("_", " "), client=client)
        for name in TERMS_METADATA
    ]
    metadata += [
        rg.FloatMetadataProperty("clip_min_score", title="CLIP min score", client=client),
        rg.IntegerMetadataProperty("n_images", title="images", client=client),
        rg.IntegerMetadataProperty(AUDIT_SORT, title=AUDIT_METADATA[0][1], client=client),
        rg.TermsMetadataProperty("audit_codes", title=AUDIT_METADATA[1][1], client=client),
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
        questions=[_question(q, client, sizes) for q in rubric.for_category(category)],
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
    if record.get("audit") is not None:  # audited: the count, 0 when nothing was found
        flags = audit_flags(record)
        meta[AUDIT_SORT] = len(flags)
        if flags:
            meta["audit_codes"] = [str(f.get("code")) for f in flags]
    return {k: v for k, v in meta.items() if v is not None}


def argilla_record(
    record: dict[str, Any],
    rubric: Rubric,
    image_url: Callable[[str], str],
    notes: dict[str, Any] | None = None,
) -> rg.Record:
    """The Argilla record of an mmloom record: rendered item, metadata, taxonomy suggestions.

    ``notes`` (a second round: why the record came back, earlier comments, and any per-item
    choices the dataset lacks) are shown above the item.
    """
    html = render_record(record, image_url, notes)
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


def annotation_link(base_url: str, dataset_id: Any, flagged_first: bool = True) -> str:
    """The URL of a dataset's annotation mode in Argilla's UI; with ``flagged_first`` sorted by
    the ``audit_flags`` metadata, descending, so the flagged items come first (the UI keeps a
    sort in its ``sort`` query parameter as ``entity.name.order``). Without a sort, Argilla 2.8
    gives each annotator the pending records in a random order of their own."""
    url = f"{base_url.rstrip('/')}/dataset/{dataset_id}/annotation-mode"
    return f"{url}?sort=metadata.{AUDIT_SORT}.desc" if flagged_first else url


def question_names(dataset: rg.Dataset) -> list[str]:
    """The question names of an existing dataset, in order."""
    return [q.name for q in dataset.settings.questions]
