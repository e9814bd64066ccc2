"""Label-error suspicion: what the model is asked, and how its answer is scored (pure code).

A vision-language model answers each item that has a single gold label, with the item's
images, through a handler (:mod:`pipelines.audit.label_handler`: a local ``transformers``
model, or an OpenAI-compatible server such as vLLM). Which items, and how:

* **multiple choice** (``options`` set, gold = ``answer_value``, an option letter): the model
  sees the question's text and images in order, then the lettered options, and is asked for
  the letter. Each option's probability is the model's probability of answering with that
  letter, renormalised over the options (a local model: the letter's log-likelihood as the
  answer, softmax over options; a server: the letters among the top log-probabilities of the
  first answer token). ``predicted`` is the most probable option (ties: the first);
  ``confidence`` its probability.
* **open-ended with a typed answer** (``answer_type`` integer, float or text, e.g.
  MathVista's free-form items): the model generates an answer (greedy, at most
  ``max_new_tokens``), compared with the gold value (numbers numerically, at the item's
  ``precision`` when given; text after case and whitespace folding). ``confidence`` is the
  geometric mean of the generated tokens' probabilities (``exp`` of their mean
  log-probability): a model that answers otherwise *and* means it. Scoring the gold
  answer's likelihood alone was not chosen: without the competing answers it says nothing
  about disagreement.
* anything else (story and how-to continuations, instruction following, list answers) has
  no single gold label to check: ``scores.label`` says so (``scored: false`` with the reason).

**Suspicion** is the model's confidence where it disagrees with the gold label, and 0 where
it agrees: ``suspicion = confidence if predicted != gold else 0``. It is null where the model
gave no confidence (a server without log-probabilities). The deciding stage
(:class:`pipelines.audit.label_flag.FlagLabelSuspect`) flags ``label_suspect`` when
``suspicion >= audit.label.threshold``; a flag never drops the item.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from schemas.records import Record

METHOD_OPTIONS = "options"
METHOD_GENERATE = "generate"
CHECKED_TYPES = ("integer", "float", "text")

MC_INSTRUCTION = "Answer with the option's letter only."
OPEN_INSTRUCTION = "Answer with a single word or number only."

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class LabelItem:
    """One item as the model is asked it.

    Attributes:
        key: the record id.
        parts: the question in order: ``("text", str)`` and ``("image", index)`` parts,
            ``index`` into :attr:`images`, then the instruction text.
        images: ``(format, bytes)`` of each image the question shows, in order of use.
        options: option letters of a multiple-choice item (None: open-ended).
        gold: the gold label (an option letter, or the gold answer's text).
        answer_type / precision: of an open-ended item's gold answer.
    """

    key: str
    parts: tuple[tuple[str, Any], ...]
    images: tuple[tuple[str, bytes], ...]
    options: tuple[str, ...] | None
    gold: str
    answer_type: str | None = None
    precision: int | None = None

    @property
    def method(self) -> str:
        return METHOD_OPTIONS if self.options else METHOD_GENERATE


def not_checked(reason: str, model: str | None = None) -> dict[str, Any]:
    """``scores.label`` of an item that was not (or could not be) checked, and why."""
    return {
        "scored": False,
        "model": model,
        "reason": reason,
        "method": None,
        "gold": None,
        "predicted": None,
        "agree": None,
        "confidence": None,
        "gold_probability": None,
        "suspicion": None,
        "probabilities": None,
    }


def gold_label(record: Record) -> tuple[str | None, str]:
    """The record's gold label, or None and why it has none to check."""
    options = record.get("options")
    value = record.get("answer_value")
    if options:
        labels = [o["label"] for o in options]
        if not isinstance(value, str) or value not in labels:
            return None, "multiple-choice item whose answer_value is not one of its option letters"
        return value, ""
    if record.get("answer_type") not in CHECKED_TYPES or value is None or isinstance(value, list):
        return None, "no single gold label to check (only multiple-choice items and typed answers)"
    return str(value), ""


def question_parts(record: Record) -> tuple[list[tuple[str, Any]], list[str]]:
    """The question's text and image parts in order (images as indexes into the returned
    list of image paths, each image once)."""
    parts: list[tuple[str, Any]] = []
    paths: list[str] = []
    for segment in record["question"]:
        if segment.get("text"):
            parts.append(("text", segment["text"]))
        if segment.get("image"):
            if segment["image"] not in paths:
                paths.append(segment["image"])
            parts.append(("image", paths.index(segment["image"])))
    return parts, paths


def instruction(record: Record) -> str:
    """The text after the question: the lettered options (multiple choice) and what to answer."""
    options = record.get("options")
    if options:
        listed = "\n".join(f"{o['label']}. {o['text']}" for o in options)
        return f"\nOptions:\n{listed}\n{MC_INSTRUCTION}"
    return f"\n{OPEN_INSTRUCTION}"


def label_item(record: Record, images: dict[str, bytes]) -> LabelItem:
    """The :class:`LabelItem` of a checkable record; ``images`` maps its image paths to bytes.

    Raises:
        ValueError: the record has no gold label to check (the message says why).
    """
    gold, why = gold_label(record)
    if gold is None:
        raise ValueError(why)
    parts, paths = question_parts(record)
    formats = {im["path"]: im.get("format") or "jpeg" for im in record["images"]}
    options = record.get("options")
    return LabelItem(
        key=record["id"],
        parts=(*parts, ("text", instruction(record))),
        images=tuple((formats.get(p, "jpeg"), images[p]) for p in paths),
        options=tuple(o["label"] for o in options) if options else None,
        gold=gold,
        answer_type=None if options else record.get("answer_type"),
        precision=None if options else record.get("precision"),
    )


def normalise(text: str) -> str:
    """Case- and whitespace-folded text without a trailing full stop."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip().lower()


def answers_agree(
    predicted: str, gold: str, answer_type: str | None, precision: int | None = None
) -> bool:
    """Does a generated answer say the gold answer?

    Numbers (``answer_type`` integer or float): the first number in the answer equals the
    gold value, both rounded to ``precision`` decimals when given, else within a relative
    1e-9. Text: equal after :func:`normalise`.
    """
    if answer_type in ("integer", "float"):
        found = _NUMBER.search(predicted.replace(",", ""))
        try:
            want = float(gold)
        except ValueError:
            return normalise(predicted) == normalise(gold)
        if found is None:
            return False
        got = float(found.group(0))
        if precision is not None:
            return round(got, precision) == round(want, precision)
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return normalise(predicted) == normalise(gold)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def option_scores(item: LabelItem, probabilities: dict[str, float], model: str) -> dict[str, Any]:
    """``scores.label`` of a multiple-choice item from its options' probabilities (summing
    to 1; an option missing from the mapping has probability 0)."""
    assert item.options is not None
    probs = [(label, _round(probabilities.get(label, 0.0))) for label in item.options]
    predicted, confidence = max(probs, key=lambda lp: lp[1])  # max keeps the first of ties
    agree = predicted == item.gold
    return {
        "scored": True,
        "model": model,
        "reason": None,
        "method": METHOD_OPTIONS,
        "gold": item.gold,
        "predicted": predicted,
        "agree": agree,
        "confidence": confidence,
        "gold_probability": dict(probs)[item.gold],
        "suspicion": 0.0 if agree else confidence,
        "probabilities": [{"label": label, "p": p} for label, p in probs],
    }


def generated_scores(
    item: LabelItem, answer: str, token_logprobs: list[float] | None, model: str
) -> dict[str, Any]:
    """``scores.label`` of an open-ended item from the generated ``answer`` and its tokens'
    log-probabilities (None: the model gave none; an empty list: it answered nothing)."""
    agree = answers_agree(answer, item.gold, item.answer_type, item.precision)
    confidence = (
        _round(math.exp(sum(token_logprobs) / len(token_logprobs))) if token_logprobs else None
    )
    suspicion = 0.0 if agree else confidence
    return {
        "scored": True,
        "model": model,
        "reason": None,
        "method": METHOD_GENERATE,
        "gold": item.gold,
        "predicted": answer.strip()[:200],
        "agree": agree,
        "confidence": confidence,
        "gold_probability": None,
        "suspicion": suspicion,
        "probabilities": None,
    }


def choice_scores(item: LabelItem, predicted: str | None, model: str) -> dict[str, Any]:
    """``scores.label`` of a multiple-choice item answered with a letter but no
    probabilities (a server without log-probabilities): no confidence, so no suspicion."""
    if predicted is None:
        return not_checked("the model's answer names none of the options", model)
    agree = predicted == item.gold
    return {
        **option_scores(item, {predicted: 1.0}, model),
        "confidence": None,
        "gold_probability": None,
        "suspicion": 0.0 if agree else None,
        "probabilities": None,
    }


def softmax(logits: list[float]) -> list[float]:
    """Probabilities of ``logits`` (numerically stable, summed with ``math.fsum``)."""
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = math.fsum(exps)
    return [e / total for e in exps]


def letter_of(token: str, labels: tuple[str, ...]) -> str | None:
    """The option letter a generated token stands for (``"A"``, ``" A"``, ``"(A"``, ``"A."``),
    or None."""
    stripped = token.strip().strip("().:").strip()
    return stripped if stripped in labels else None


def options_from_top_logprobs(
    labels: tuple[str, ...], top: list[tuple[str, float]]
) -> tuple[dict[str, float], float]:
    """Options' probabilities from the top log-probabilities of the first answer token
    (``(token, logprob)``): each option's tokens summed, renormalised over the options.
    Also returns the probability mass the options had before renormalising (0: none of
    the letters was among the top tokens)."""
    mass: dict[str, float] = {}
    for token, logprob in top:
        label = letter_of(token, labels)
        if label is not None:
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    total = math.fsum(mass.values())
    if total <= 0:
        return {}, 0.0
    return {label: mass.get(label, 0.0) / total for label in labels}, total


def suspicion_of(record: Record) -> float | None:
    """The record's stored suspicion (None: not checked, or no confidence)."""
    label = (record.get("scores") or {}).get("label") or {}
    return label.get("suspicion") if label.get("scored") else None
