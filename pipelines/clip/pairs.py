"""Which text each image segment of a record is scored against (pure functions).

The rule, by category:

* **SA and PBL** (a story or a how-to, one picture per sentence or step): an image segment
  is scored against its *own segment's text* (``/question/3/text``, ``/answer/0/text``). An
  image segment with no text of its own (text null or only whitespace) falls back to the
  question text.
* **MSR and IF** (one question about its pictures): every image segment is scored against
  the *question text*.

The *question text* is the question's text segments, stripped, in order, joined with single
spaces; ``text_from`` is that segment's JSON pointer when the question has exactly one text
segment (``/question/0/text``) and ``/question`` when several are joined. Images in
``question``, ``answer`` and ``gt_answer`` are all scored, in that order, one pair per image
segment (an image used by two segments gives two pairs). A record with no image segment, or
with an image segment that has no text to pair with (no own text and no question text), is not
scored (``scored: false`` with the reason). CLIP's text tower sees at most its context length
(77 tokens for OpenAI CLIP): longer texts are truncated by the tokenizer.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

SEGMENT_KEYS = ("question", "answer", "gt_answer")
OWN_TEXT_CATEGORIES = ("SA", "PBL")

NO_IMAGES = "no image segments to score"
NO_TEXT = "an image segment has no text to score against (no own text, no question text)"


class ClipPair(NamedTuple):
    """One image segment and the text it is scored against."""

    image: str  # the image's path, images/<sha256>.<ext>
    text_from: str  # JSON pointer of the text
    text: str


def _clean(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


def question_text(record: dict[str, Any]) -> tuple[str, str] | None:
    """``(pointer, text)`` of the question text, or None when the question has no text."""
    cleaned = [(i, _clean(s.get("text"))) for i, s in enumerate(record["question"])]
    parts = [(i, t) for i, t in cleaned if t]
    if not parts:
        return None
    if len(parts) == 1:
        return f"/question/{parts[0][0]}/text", parts[0][1]
    return "/question", " ".join(t for _, t in parts)


def clip_pairs(record: dict[str, Any]) -> list[ClipPair]:
    """Every image segment of ``record`` with its text (see the module docstring).

    Raises:
        ValueError: with :data:`NO_IMAGES` or :data:`NO_TEXT` when the record cannot be scored.
    """
    own_text = record["category"] in OWN_TEXT_CATEGORIES
    question = question_text(record)
    pairs: list[ClipPair] = []
    for key in SEGMENT_KEYS:
        for i, s in enumerate(record.get(key) or []):
            image = s.get("image")
            if image is None:
                continue
            text = _clean(s.get("text"))
            if own_text and text:
                pairs.append(ClipPair(image, f"/{key}/{i}/text", text))
            elif question is not None:
                pairs.append(ClipPair(image, question[0], question[1]))
            else:
                raise ValueError(NO_TEXT)
    if not pairs:
        raise ValueError(NO_IMAGES)
    return pairs


def text_ref(text: str) -> str:
    """Stable id of a text (its sha256), so equal texts are embedded once per record."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
