"""Dead letters: every rejected input, with the stage and reason that rejected it.

Each stage that can reject emits dead letters on a tagged output named ``DEAD`` with the
shape ``{stage, reason, source, source_id, detail}``; the build writes them as JSON Lines to
``<output>/dead_letters/`` and counts them per source and reason in ``stats.json``.
"""

from __future__ import annotations

from typing import TypedDict

DEAD = "dead"


class DeadLetter(TypedDict):
    """One rejected unit, as written to ``dead_letters/`` (a plain dict at runtime)."""

    stage: str
    reason: str
    source: str
    source_id: str
    detail: str
    unit: str


# Stages, in pipeline order.
STAGE_READ = "read"
STAGE_RESTRUCTURE = "restructure"
STAGE_IMAGES = "load_images"
STAGE_VALIDATE = "validate"
STAGE_DEDUPE_IDS = "dedupe_ids"

MAX_DETAIL = 2000


UNIT_RECORD = "record"
UNIT_IMAGE = "image"


def dead_letter(
    stage: str,
    reason: str,
    source: str,
    source_id: str,
    detail: str = "",
    unit: str = UNIT_RECORD,
) -> DeadLetter:
    """Build one dead letter. ``detail`` is truncated to keep dead-letter files readable.

    ``unit`` says what was rejected: a whole ``record`` (counted in stats.json's ``dropped``,
    so that read = written + dropped) or one ``image`` of a record that was kept without it
    (counted in ``images_dropped``).
    """
    detail = str(detail)
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL] + f"... [{len(detail) - MAX_DETAIL} more characters]"
    return {
        "stage": stage,
        "reason": reason,
        "source": source,
        "source_id": str(source_id),
        "detail": detail,
        "unit": unit,
    }


def from_exception(stage: str, source: str, source_id: str, exc: BaseException) -> DeadLetter:
    """Dead letter for an exception: a RecordError keeps its reason, anything else is
    ``unexpected_error`` with the exception type, so a bug shows up in stats instead of
    crashing the run or vanishing."""
    from schemas.errors import RecordError

    if isinstance(exc, RecordError):
        return dead_letter(stage, exc.reason, source, source_id, exc.detail)
    return dead_letter(stage, "unexpected_error", source, source_id, f"{type(exc).__name__}: {exc}")
