"""Record and config schemas shipped as package data, plus the record helpers built on them.

``load_schema("record")`` returns the parsed JSON Schema; ``schemas.records`` builds records;
``schemas.validation.validate_record`` checks one against the schema and the rules JSON
Schema cannot express (see that module).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

SCHEMA_VERSION = "1.2.0"
CONFIG_SCHEMA_VERSION = 1


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>.schema.json`` from package data (works on Dataflow workers)."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def with_defaults(properties: dict[str, Any], values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` (a validated object) with every missing key of ``properties`` that has a
    ``default`` in the schema filled in; the one place schema defaults are applied.

    Args:
        properties: the ``properties`` mapping of a schema object.
        values: the object's values (None: all defaults).
    """
    out = dict(values or {})
    for key, prop in properties.items():
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out
