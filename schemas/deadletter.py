"""Dead letters: every rejected input, with the stage and reason that rejected it.

Each stage that can reject emits dead letters on a tagged output named ``DEAD`` with the
shape ``{stage, reason, source, source_id, detail, unit}``; the build writes them as JSON Lines
to ``<output>/dead_letters/`` and counts them per source and reason in ``stats.json``.

A stage rejects through its base class, :class:`schemas.stage.RecordStage` (``reject``,
``reject_exception``, ``reject_letter`` for a dead letter built by a pure function): it counts
``dropped_<reason>`` (``images_dropped_<reason>`` for an image unit) in the stage's counter
namespace and returns the ``TaggedOutput(DEAD, ...)`` to yield. No stage builds that output
itself. This module builds the letters.
"""

from __future__ import annotations

import re
from typing import TypedDict

from schemas.errors import as_record_error

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
STAGE_SCORE_CLIP = "score_clip"
STAGE_DEDUPE = "dedupe"
STAGE_FILTER_CLIP = "filter_clip"
STAGE_AUDIT_PATTERNS = "audit_patterns"
STAGE_DROP_FLAGGED = "drop_flagged"
STAGE_SCORE_LABEL = "score_label"
STAGE_FLAG_LABEL = "flag_label"
STAGE_SCORE_BLIND = "score_blind"
STAGE_AUDIT_BLIND = "audit_blind"
STAGE_WRITE = "write_records"
STAGES = (
    STAGE_READ,
    STAGE_RESTRUCTURE,
    STAGE_IMAGES,
    STAGE_VALIDATE,
    STAGE_DEDUPE_IDS,
    STAGE_SCORE_CLIP,
    STAGE_DEDUPE,
    STAGE_FILTER_CLIP,
    STAGE_AUDIT_PATTERNS,
    STAGE_SCORE_BLIND,
    STAGE_AUDIT_BLIND,
    STAGE_SCORE_LABEL,
    STAGE_FLAG_LABEL,
    STAGE_DROP_FLAGGED,
    STAGE_WRITE,
)

MAX_DETAIL = 2000

# ``<_io.BytesIO object at 0x7f...>``: an address that differs run to run (Pillow's messages).
_OBJECT_REPR = re.compile(r"<([A-Za-z_][\w.]*) object at 0x[0-9A-Fa-f]+>")


def scrub_detail(detail: str) -> str:
    """``detail`` without object reprs' addresses, so dead letters are the same every run.

    ``<_io.BytesIO object at 0x7f3a...>`` becomes ``<_io.BytesIO>``. Machine paths are the
    caller's job: name files with :func:`schemas.fs.display_path`.
    """
    return _OBJECT_REPR.sub(r"<\1>", detail)


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
    detail = scrub_detail(str(detail))
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


def origin(element: object) -> tuple[str, str]:
    """``(source, source_id)`` of a draft or record for its dead letter, whatever its shape.

    Stages before validation get what a restructure function returned, so a missing or
    malformed ``provenance`` must still give a dead letter, not a crash: ``("unknown", id)``.
    """
    prov = element.get("provenance") if isinstance(element, dict) else None
    if not isinstance(prov, dict):
        prov = {}
    fallback = element.get("id", "?") if isinstance(element, dict) else "?"
    return str(prov.get("source", "unknown")), str(prov.get("source_id", fallback))


def from_exception(stage: str, source: str, source_id: str, exc: BaseException) -> DeadLetter:
    """Dead letter for an exception: a RecordError keeps its reason, anything else is
    ``unexpected_error`` with the exception type, so a bug shows up in stats instead of
    crashing the run or vanishing."""
    err = as_record_error(exc)
    return dead_letter(stage, err.reason, source, source_id, err.detail)
