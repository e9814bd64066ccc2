"""Validity-audit flags on a record (``record.schema.json``: ``audit``, ``$defs/audit_flag``).

An audit stage finds evidence that an item may be answerable without its images, carry an
exploitable answer pattern, or be mislabeled, and records it as a flag. A flag is evidence for
review, never a verdict: adding one never drops the item. Stages add flags with
:func:`add_flags`, which keeps the list in one canonical order, so equal inputs give equal bytes
whatever order the stages ran in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

AuditFlag = dict[str, Any]


def flag(
    code: str, stage: str, reason: str, figure: float | None = None, threshold: float | None = None
) -> AuditFlag:
    """One flag: ``code`` (what), ``stage`` (who), ``reason`` (plain words for annotators), the
    ``figure`` behind it and the ``threshold`` it crossed (non-finite numbers are refused)."""
    for name, value in (("figure", figure), ("threshold", threshold)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"audit flag {code!r}: {name} must be a finite number, got {value!r}")
    return {
        "code": code,
        "stage": stage,
        "reason": reason,
        "figure": None if figure is None else float(figure),
        "threshold": None if threshold is None else float(threshold),
    }


def add_flags(record: dict[str, Any], flags: Iterable[AuditFlag]) -> dict[str, Any]:
    """A copy of ``record`` with ``flags`` added to ``audit.flags``, sorted by (stage, code).

    A flag with the same (stage, code) as one already there replaces it (a stage re-run on its
    own output does not stack flags). With no flags to add, the record's ``audit`` becomes
    ``{"flags": []}`` (audited, nothing found) where it was null.
    """
    current = {(f["stage"], f["code"]): f for f in ((record.get("audit") or {}).get("flags") or [])}
    for f in flags:
        current[(f["stage"], f["code"])] = f
    out = dict(record)
    out["audit"] = {"flags": [current[k] for k in sorted(current)]}
    return out


def flag_codes(record: dict[str, Any]) -> list[str]:
    """The codes of a record's flags (empty when not audited or nothing found)."""
    return [f["code"] for f in ((record.get("audit") or {}).get("flags") or [])]
