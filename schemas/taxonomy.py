"""The field/subfield taxonomy (``schemas/taxonomy.yaml``) and per-source mapping tables."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from schemas.records import FIELDS


@functools.cache
def taxonomy() -> dict[str, tuple[str, ...]]:
    """field -> subfields, exactly as listed in ``schemas/taxonomy.yaml``."""
    data = yaml.safe_load(resources.files("schemas").joinpath("taxonomy.yaml").read_text("utf-8"))
    out = {field: tuple(subs) for field, subs in data["fields"].items()}
    unknown = set(out) - set(FIELDS)
    if unknown or len(out) != len(FIELDS):
        raise ValueError(f"taxonomy.yaml must list exactly the 12 MMIE fields; got {sorted(out)}")
    return out


def is_known(field: str, subfield: str) -> bool:
    return subfield in taxonomy().get(field, ())


@functools.cache
def source_table(source: str) -> dict[str, Any]:
    """Load ``sources/<source>/fields.yaml`` (package data) and check its targets."""
    text = resources.files("sources").joinpath(source, "fields.yaml").read_text("utf-8")
    table = yaml.safe_load(text)
    for field, subfield in iter_targets(table):
        if not is_known(field, subfield):
            raise ValueError(
                f"sources/{source}/fields.yaml maps to ({field!r}, {subfield!r}), which is not in "
                "schemas/taxonomy.yaml; add it there (with a CHANGELOG line) or fix the table"
            )
    return table


def iter_targets(node: Any):
    """Yield every ``{field, subfield}`` pair found anywhere in a mapping table."""
    if isinstance(node, dict):
        if "field" in node and "subfield" in node:
            yield node["field"], node["subfield"]
        for value in node.values():
            yield from iter_targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_targets(value)
