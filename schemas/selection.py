"""Seeded stratified selection: per category x field, the records whose
``sha256(f"{seed}:{id}")`` is smallest, as many as a sizes table says.

One rule for both users: ``mmloom publish --targets FILE`` (which records a release keeps) and
``mmloom annotate push --sample stratified`` (which records go to annotators). A sizes table
maps category -> field -> count, ``"*"`` standing for the fields a category does not name::

    {"PBL": {"Health": 20, "*": 5}, "IF": {"*": 2}}

A cell that the table does not size keeps ``default`` records (``None``: all of them). The
choice depends only on the seed and the ids: the same build and seed give the same records,
whatever order they are read in.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from schemas import yamlsafe
from schemas.errors import MmloomError
from schemas.records import CATEGORIES, FIELDS

Sizes = dict[str, dict[str, int]]


def rank(seed: int, rid: str) -> str:
    """The key a cell's records are sorted by (smallest first)."""
    return hashlib.sha256(f"{seed}:{rid}".encode()).hexdigest()


def cell_size(
    sizes: Mapping[str, Mapping[str, int]] | None,
    category: str,
    field: str,
    default: int | None = None,
) -> int | None:
    """How many records the cell keeps: its own count, else its category's ``"*"``, else
    ``default`` (``None``: every record)."""
    table = (sizes or {}).get(category)
    if table is None:
        return default
    return table.get(field, table.get("*", default))


@dataclass
class Cell:
    """One category x field cell: its records in rank order and how many it keeps."""

    category: str
    field: str
    ranked: list[dict[str, Any]]
    size: int | None

    @property
    def kept(self) -> list[dict[str, Any]]:
        return self.ranked if self.size is None else self.ranked[: self.size]

    @property
    def left(self) -> list[dict[str, Any]]:
        return [] if self.size is None else self.ranked[self.size :]


def stratify(
    records: Iterable[dict[str, Any]],
    sizes: Mapping[str, Mapping[str, int]] | None,
    seed: int,
    default: int | None = None,
) -> list[Cell]:
    """Every cell, sorted by (category, field): the cells records fall in and those ``sizes``
    names (empty when no record is there), each with its records ranked by :func:`rank`."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cells[(r["category"], r["field"])].append(r)
    for cat, fields in (sizes or {}).items():
        for fld in fields:
            if fld != "*":
                cells.setdefault((cat, fld), [])
    return [
        Cell(
            cat,
            fld,
            sorted(members, key=lambda r: rank(seed, r["id"])),
            cell_size(sizes, cat, fld, default),
        )
        for (cat, fld), members in sorted(cells.items())
    ]


def read_sizes(path: str, what: str) -> Sizes:
    """Read and check a sizes file (YAML or JSON) of counts per category x field.

    ``what`` names the file in messages (``targets file``, ``--sizes``).

    Raises:
        MmloomError: the file cannot be read, or is not category -> field -> count with
        known categories and fields and non-negative integer counts.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = yamlsafe.load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise MmloomError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MmloomError(f"{path} must map category -> field -> count, e.g. {{PBL: {{Art: 10}}}}")
    out: Sizes = {}
    for cat, cells in data.items():
        if cat not in CATEGORIES:
            raise MmloomError(f"{path}: unknown category {cat!r}; use one of {list(CATEGORIES)}")
        if not isinstance(cells, dict):
            raise MmloomError(f"{path}: {cat} must map field -> count")
        for fld, n in cells.items():
            if fld != "*" and fld not in FIELDS:
                raise MmloomError(f"{path}: unknown field {fld!r}; use '*' or one of {FIELDS}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise MmloomError(f"{path}: {cat}/{fld} must be a non-negative integer")
        out[str(cat)] = {str(k): int(v) for k, v in cells.items()}
    return out
