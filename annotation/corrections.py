"""Corrections annotators write, read and applied: the answer text and the IF weights.

A rubric's ``correction: answer`` question carries the whole reference answer as it should
read; ``correction: weights`` the IF sub-instruction weights written as ``6/2/2``. ``pull``
normalises and checks them (:func:`normalise`) and resolves them only when every annotator
who chose fix gave the same value; ``publish`` applies a resolved one to the record
(:func:`apply`), which checks it against the record itself (the number of answer parts or
sub-instructions, the answer's type, the multiple-choice options).

Only the standard library: ``pipelines.publish`` imports this module without Argilla.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

KINDS = ("answer", "weights")
MIN_WEIGHT, MAX_WEIGHT, WEIGHT_TOTAL = 1, 10, 10
MIN_SUBS, MAX_SUBS = 2, 5  # the record schema's bounds on IF sub-instructions
_WEIGHTS = re.compile(r"^\s*[0-9]+(\s*/\s*[0-9]+)+\s*$")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_OPTION = re.compile(r"^\(?([A-Za-z])\)?(?:[.:)]?\s+(.*))?$", re.DOTALL)


class CorrectionError(ValueError):
    """A correction that cannot be read or does not fit the record; the message says why."""


def parse_weights(text: str) -> list[int]:
    """``"6/2/2"`` -> ``[6, 2, 2]``: whole numbers from 1 to 10, 2 to 5 of them, summing to 10.

    Raises:
        CorrectionError: anything else.
    """
    if not _WEIGHTS.match(text):
        raise CorrectionError(f"weights {text.strip()!r} are not written as N/N/... (e.g. 6/2/2)")
    weights = [int(w) for w in text.split("/")]
    if not MIN_SUBS <= len(weights) <= MAX_SUBS:
        raise CorrectionError(f"weights {text.strip()!r}: {len(weights)} numbers, not 2 to 5")
    if any(not MIN_WEIGHT <= w <= MAX_WEIGHT for w in weights):
        raise CorrectionError(f"weights {text.strip()!r}: each must be 1 to 10")
    if sum(weights) != WEIGHT_TOTAL:
        raise CorrectionError(f"weights {text.strip()!r} sum to {sum(weights)}, not 10")
    return weights


def normalise_answer(text: str) -> str:
    """The answer text with line ends unified and trailing blanks removed (so two annotators
    who typed the same text agree)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip()


def normalise(kind: str, value: Any) -> str | list[int] | None:
    """A submitted correction answer as the value a decision carries; None when empty.

    Raises:
        CorrectionError: unreadable weights, or a value that is not text.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise CorrectionError(f"a {kind} correction must be text, got {type(value).__name__}")
    if not value.strip():
        return None
    if kind == "weights":
        return parse_weights(value)
    return normalise_answer(value)


def _answer_value(record: dict[str, Any], text: str) -> tuple[str, Any]:
    """The answer text to store and the ``answer_value`` that goes with it."""
    options = record.get("options")
    if options:
        labels = {o["label"]: o["text"] for o in options}
        m = _OPTION.match(text)
        label = m.group(1).upper() if m and m.group(1).upper() in labels else None
        if label is None:
            label = next((k for k, v in labels.items() if v.strip() == text.strip()), None)
        if label is None:
            raise CorrectionError(
                f"the corrected answer {text!r} names none of the options {sorted(labels)}"
            )
        return f"({label}) {labels[label]}", label
    kind = record.get("answer_type")
    if record.get("answer_value") is None:
        return text, None
    try:
        if kind == "integer":
            return text, int(text)
        if kind == "float":
            return text, float(text)
        if kind == "list":
            value = json.loads(text)
            if not isinstance(value, list):
                raise ValueError
            return text, value
    except ValueError:
        raise CorrectionError(
            f"the corrected answer {text!r} is not a{'n' if kind == 'integer' else ''} "
            f"{kind} (the item's answer type)"
        ) from None
    return text, text


def _reweigh_checklist(text: str | None, comps: list[dict[str, Any]], weights: list) -> str | None:
    """``text`` with each checklist line ``N. TYPE (W/10):`` of sub-instruction N given its
    corrected weight (lines that do not name sub-instruction N's type are left alone)."""
    if not text:
        return text
    lines = text.split("\n")
    for n, (comp, weight) in enumerate(zip(comps, weights, strict=True), 1):
        prefix = f"{n}. {comp.get('type')} ({comp.get('weight')}/10):"
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                lines[i] = f"{n}. {comp.get('type')} ({int(weight)}/10):" + line[len(prefix) :]
    return "\n".join(lines)


def apply(record: dict[str, Any], kind: str, value: Any) -> tuple[dict[str, Any], Any]:
    """``record`` with one resolved correction applied, and what it replaced.

    * ``answer``: the text segments of ``answer`` get the text (several segments: as many
      paragraphs, separated by a blank line, in order; images stay); a reference text in
      ``gt_answer`` (MSR, IF) becomes the whole text; ``answer_value`` follows it (an option
      label for multiple choice, a number for numeric answers).
    * ``weights``: the weights of ``instruction``'s sub-instructions, in order, and the
      ``(W/10)`` of each line of the reference's checklist (``answer``, ``gt_answer``).

    Returns:
        ``(new record, before)``: ``before`` holds the replaced values, same keys as changed.

    Raises:
        CorrectionError: the correction does not fit the record.
    """
    fixed = copy.deepcopy(record)
    if kind == "weights":
        comps = (record.get("instruction") or {}).get("components") or []
        if not isinstance(value, list) or len(value) != len(comps):
            raise CorrectionError(
                f"{len(value) if isinstance(value, list) else '?'} weights for "
                f"{len(comps)} sub-instructions"
            )
        for comp, weight in zip(fixed["instruction"]["components"], value, strict=True):
            comp["weight"] = int(weight)
        before: dict[str, Any] = {"weights": [c["weight"] for c in comps]}
        # the reference's checklist ("2. count (3/10): ...", sources/coco/instructions.py)
        # states each weight too: it follows the corrected weights
        for key in ("answer", "gt_answer"):
            texts = [seg.get("text") for seg in fixed.get(key) or []]
            new_texts = [_reweigh_checklist(t, comps, value) for t in texts]
            if new_texts != texts:
                # as an answer correction records them: the answer's texts, gt_answer's text
                kept = [t for t in texts if t is not None]
                before[key] = kept if key == "answer" else kept[0]
                for seg, text in zip(fixed[key], new_texts, strict=True):
                    seg["text"] = text
        return fixed, before
    if kind != "answer" or not isinstance(value, str) or not value:
        raise CorrectionError(f"unknown correction {kind!r}")
    slots = [i for i, s in enumerate(record["answer"]) if s["text"] is not None]
    if not slots:
        raise CorrectionError("the answer has no text to correct")
    parts = [value] if len(slots) == 1 else [p.strip() for p in _PARAGRAPHS.split(value)]
    if len(parts) != len(slots) or not all(parts):
        raise CorrectionError(
            f"the corrected answer has {len(parts)} paragraphs; the answer has {len(slots)} "
            "parts (one paragraph each, separated by a blank line)"
        )
    if len(slots) == 1:
        parts[0], answer_value = _answer_value(record, value)
    else:
        answer_value = record.get("answer_value")
    before: dict[str, Any] = {"answer": [record["answer"][i]["text"] for i in slots]}
    for i, text in zip(slots, parts, strict=True):
        fixed["answer"][i]["text"] = text
    gt = record.get("gt_answer") or []
    if gt and gt[0]["text"] is not None:
        before["gt_answer"] = gt[0]["text"]
        fixed["gt_answer"][0]["text"] = "\n\n".join(parts)
    if answer_value != record.get("answer_value"):
        before["answer_value"] = record.get("answer_value")
        fixed["answer_value"] = answer_value
    return fixed, before
