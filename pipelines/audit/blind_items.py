"""What the blind-answerability audit scores in a record, and the scores it writes (pure code:
no torch, no Beam).

A text-only language model sees an item's text without its images:

* **multiple choice** (``question_format: multiple_choice`` with lettered ``options`` and the
  gold label in ``answer_value``): for every option, the log-probability of ``" <option
  text>"`` after ``"<question text>\\nAnswer:"``, **length-normalised**: the mean over the
  option's tokens (nats per token), so long options are not penalised for their length. The
  ``margin`` is the gold option's mean minus the best other option's: positive when the gold
  option wins without the images.
* **open-ended** (every other item): the mean log-probability per token of the reference
  answer (the text of ``answer``'s segments) after ``"<question text>\\nAnswer:"``
  (``with_question``) and after ``"Answer:"`` alone (``without_question``). ``leakage`` is
  their difference: how many nats per token the question's text gives away about the answer
  (a pointwise mutual information per token).

The question's text is its segments' texts joined by newlines; images are left out. Scores
are rounded to 6 places (:data:`PLACES`). Deciding (flags) is separate:
:mod:`pipelines.audit.blind_flag`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MULTIPLE_CHOICE = "multiple_choice"
OPEN_ENDED = "open_ended"
WITH_QUESTION = "with_question"
WITHOUT_QUESTION = "without_question"
OPTION_PREFIX = "option/"
ANSWER_CUE = "Answer:"
PLACES = 6

NO_QUESTION_TEXT = "the question has no text (images only)"
NO_REFERENCE_TEXT = "the reference answer has no text"
GOLD_NOT_AN_OPTION = "answer_value is not the label of one of the options"


@dataclass(frozen=True)
class Continuation:
    """One text to score: the log-probability of ``continuation`` after ``context``.

    ``ref`` names it within its record: ``option/<label>``, ``with_question`` or
    ``without_question``.
    """

    ref: str
    context: str
    continuation: str


@dataclass(frozen=True)
class BlindItem:
    """What to score in one record: its kind, the continuations, and the gold label (MC)."""

    kind: str
    continuations: tuple[Continuation, ...]
    gold: str | None = None


def _texts(segments: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(s["text"].strip() for s in segments if s.get("text") and s["text"].strip())


def blind_item(record: Mapping[str, Any]) -> BlindItem:
    """The continuations to score for ``record``.

    Raises:
        ValueError: the record cannot be scored blind (the message is the reason recorded
            in ``scores.blind``): no question text, no reference text, or a multiple-choice
            item whose ``answer_value`` is not one of its option labels.
    """
    question = _texts(record["question"])
    if not question:
        raise ValueError(NO_QUESTION_TEXT)
    prompt = f"{question}\n{ANSWER_CUE}"
    options = record.get("options") or []
    if record.get("question_format") == MULTIPLE_CHOICE and len(options) >= 2:
        gold = record.get("answer_value")
        labels = [o["label"] for o in options]
        if not isinstance(gold, str) or gold not in labels:
            raise ValueError(GOLD_NOT_AN_OPTION)
        return BlindItem(
            MULTIPLE_CHOICE,
            tuple(
                Continuation(f"{OPTION_PREFIX}{o['label']}", prompt, f" {o['text'].strip()}")
                for o in options
            ),
            gold,
        )
    reference = _texts(record["answer"])
    if not reference:
        raise ValueError(NO_REFERENCE_TEXT)
    return BlindItem(
        OPEN_ENDED,
        (
            Continuation(WITH_QUESTION, prompt, f" {reference}"),
            Continuation(WITHOUT_QUESTION, ANSWER_CUE, f" {reference}"),
        ),
    )


def mean_logprob(token_logprobs: Sequence[float]) -> float:
    """The mean of per-token log-probabilities, summed exactly (``math.fsum``), so the value
    depends on the numbers alone, not on their order or a BLAS kernel."""
    if len(token_logprobs) == 0:
        raise ValueError("no tokens to score")
    return math.fsum(float(x) for x in token_logprobs) / len(token_logprobs)


def not_scored_blind(reason: str) -> dict[str, Any]:
    """The ``scores.blind`` value of a record that was not (or could not be) scored."""
    return {
        "scored": False,
        "model": None,
        "reason": reason,
        "kind": None,
        "truncated": None,
        "options": [],
        "gold": None,
        "margin": None,
        "with_question": None,
        "without_question": None,
        "leakage": None,
    }


def blind_scores(
    item: BlindItem,
    results: Mapping[str, tuple[Sequence[float], bool]],
    model_id: str,
) -> dict[str, Any]:
    """The ``scores.blind`` value from the model's per-token log-probabilities.

    Args:
        item: what was scored (:func:`blind_item`).
        results: continuation ``ref`` -> (the continuation's per-token log-probabilities,
            whether its text was truncated to fit ``max_length``).
        model_id: what ``scores.blind.model`` names.
    Raises:
        KeyError: a continuation has no result.
    """
    means = {c.ref: mean_logprob(results[c.ref][0]) for c in item.continuations}
    truncated = any(results[c.ref][1] for c in item.continuations)
    out = not_scored_blind("")
    out.update(scored=True, model=model_id, reason=None, kind=item.kind, truncated=truncated)
    if item.kind == MULTIPLE_CHOICE:
        gold_ref = f"{OPTION_PREFIX}{item.gold}"
        others = [v for ref, v in means.items() if ref != gold_ref]
        out["options"] = [
            {
                "label": c.ref[len(OPTION_PREFIX) :],
                "logprob": round(means[c.ref], PLACES),
                "tokens": len(results[c.ref][0]),
            }
            for c in item.continuations
        ]
        out["gold"] = item.gold
        out["margin"] = round(means[gold_ref] - max(others), PLACES)
    else:
        with_q, without_q = means[WITH_QUESTION], means[WITHOUT_QUESTION]
        out["with_question"] = round(with_q, PLACES)
        out["without_question"] = round(without_q, PLACES)
        out["leakage"] = round(with_q - without_q, PLACES)
    return out
