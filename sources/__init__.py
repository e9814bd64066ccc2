"""Source registry: ``get_source("vist")`` returns the registered :class:`sources.base.Source`.

Each source lives in ``sources/<name>/`` and exposes ``SOURCE`` in its ``__init__``. Modules
are imported on first use so that a worker only imports what its pipeline needs.
"""

from __future__ import annotations

import importlib

from sources.base import Source

SOURCE_MODULES = {
    "vist": "sources.vist",
    "wikihow": "sources.wikihow",
    "mathvista": "sources.mathvista",
    "remi": "sources.remi",
    "coco": "sources.coco",
}


def names() -> list[str]:
    return list(SOURCE_MODULES)


def get_source(name: str) -> Source:
    if name not in SOURCE_MODULES:
        raise KeyError(f"unknown source {name!r}; known sources: {', '.join(SOURCE_MODULES)}")
    return importlib.import_module(SOURCE_MODULES[name]).SOURCE
