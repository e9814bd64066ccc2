"""Synthetic corpora for the model-free audit: planted biases and a bias-free control."""

from __future__ import annotations

import random
from typing import Any

LETTERS = "ABCDEFGHIJ"
WORDS = """apple river stone cloud maple ember violet harbor candle meadow falcon copper
lantern orchid pepper quartz saddle tunnel velvet willow""".split()  # noqa: SIM905


def mc_record(
    i: int,
    options: list[str],
    answer: int,
    *,
    source: str = "mathvista",
    field: str = "Mathematics",
    stem: str | None = None,
) -> dict[str, Any]:
    """A multiple-choice record (only the keys the audit reads, plus an id)."""
    stem = stem if stem is not None else f"Which shape is shown in figure {i}?"
    listing = "\n".join(f"({LETTERS[j]}) {o}" for j, o in enumerate(options))
    return {
        "id": f"MSR_{source}_{i}",
        "category": "MSR",
        "field": field,
        "subfield": "Geometry",
        "question_format": "multiple_choice",
        "question": [{"text": f"{stem}\nChoices:\n{listing}", "image": "images/x.jpg"}],
        "answer": [{"text": f"({LETTERS[answer]}) {options[answer]}", "image": None}],
        "options": [{"label": LETTERS[j], "text": o} for j, o in enumerate(options)],
        "answer_value": LETTERS[answer],
        "provenance": {"source": source, "source_id": str(i)},
        "source_metadata": {"question": stem},
        "audit": None,
    }


def oe_record(
    i: int,
    question: str,
    answer: list[str],
    *,
    source: str = "mathvista",
    subfield: str = "Counting",
    prompt: str | None = None,
) -> dict[str, Any]:
    """An open-ended record: ``answer`` is its text segments."""
    meta: dict[str, Any] = {"question": question}
    segments = [{"text": question, "image": "images/x.jpg"}]
    if prompt is not None:
        meta = {"prompt": prompt}
        segments.insert(0, {"text": prompt, "image": None})
    return {
        "id": f"SA_{source}_{i}",
        "category": "SA",
        "field": "Literature",
        "subfield": subfield,
        "question_format": "open_ended",
        "question": segments,
        "answer": [{"text": t, "image": None} for t in answer],
        "options": None,
        "answer_value": None,
        "provenance": {"source": source, "source_id": str(i)},
        "source_metadata": meta,
        "audit": None,
    }


def _word(rng: random.Random, length: int) -> str:
    """A distinct-looking option text of exactly ``length`` characters."""
    base = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(length))
    return base


def _options(rng: random.Random, k: int) -> list[str]:
    lengths = rng.sample(range(3, 30), k)  # distinct lengths: a unique longest and shortest
    return [_word(rng, n) for n in lengths]


def control_mc(n: int = 300, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """No bias: random option lengths, the answer at a uniformly random position."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        k = rng.choice([2, 3, 4, 5])
        out.append(mc_record(i, _options(rng, k), rng.randrange(k)))
    return out


def always_position(n: int = 300, pos: int = 0, seed: int = 1, start: int = 0) -> list[dict]:
    """The answer is always option ``pos`` (A by default); lengths random."""
    rng = random.Random(seed)
    return [mc_record(i, _options(rng, 4), pos) for i in range(start, start + n)]


def always_extreme(n: int = 300, longest: bool = True, seed: int = 2, start: int = 0):
    """The answer is always the longest (or shortest) option, at a random position."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        options = _options(rng, 4)
        rng.shuffle(options)
        lengths = [len(o) for o in options]
        target = lengths.index(max(lengths) if longest else min(lengths))
        out.append(mc_record(i, options, target))
    return out


def control_oe(n: int = 200, seed: int = 3, start: int = 0) -> list[dict[str, Any]]:
    """Open-ended control: diverse answers (numbers 0-99 and three-word phrases drawn at
    random), one question template per block of items."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        if i % 2:
            answer = str(rng.randrange(100))
            question = f"How many objects are left after removing {i % 7} cubes?"
        else:
            answer = " ".join(rng.sample(WORDS, 3))
            question = f"What is written on the sign number {i}?"
        out.append(oe_record(i, question, [answer]))
    return out
