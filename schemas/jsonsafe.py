"""JSON that every parser accepts: no NaN or Infinity.

Python's ``json`` writes ``NaN``/``Infinity`` for non-finite floats, which is not JSON; a
value like that in source metadata would make records and ``mmloom show --jsonl`` unreadable
by strict parsers. :func:`replace_non_finite` replaces them with null and says where.

Bottom layer: imports nothing of the project.
"""

from __future__ import annotations

import json
import math
from typing import Any


def replace_non_finite(value: Any, pointer: str = "") -> tuple[Any, list[str]]:
    """``value`` with every NaN/Infinity float replaced by None, and the JSON pointers of the
    replaced values (empty when nothing changed; then ``value`` is returned as is)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [pointer or "/"]
    if isinstance(value, dict):
        found: list[str] = []
        out = {}
        for k, v in value.items():
            out[k], sub = replace_non_finite(v, f"{pointer}/{_escape(str(k))}")
            found += sub
        return (out, found) if found else (value, [])
    if isinstance(value, list | tuple):
        found = []
        items = []
        for i, v in enumerate(value):
            item, sub = replace_non_finite(v, f"{pointer}/{i}")
            items.append(item)
            found += sub
        return (items, found) if found else (value, [])
    return value, []


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity (they become null)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(replace_non_finite(value)[0], allow_nan=False, **kwargs)
