"""The contract every source reader follows (file helpers: ``schemas.fs``).

A source is a folder ``sources/<name>/`` with:

* ``parse.py``: pure functions. ``restructure(item, options) -> draft record`` turns one
  *item* (one unit read from the source) into a draft record (``schemas.records``), or
  raises ``RecordError(reason, detail)``.
* ``reader.py``: ``Read<Source>(options)``, a PTransform from the pipeline root to a
  ``DoOutputsTuple`` with a main output of items and a ``DEAD`` output of read-stage dead
  letters. Every unit the reader sees ends up in exactly one of the two; the build counts
  both as ``read``.
* ``fields.yaml`` (mapping table into ``schemas/taxonomy.yaml``), ``README.md`` (provenance,
  licence, citation, the tables), ``CITATION.bib``.

An *item* is a plain picklable dict with at least ``source``, ``source_id``, ``split`` and
``source_file``; the rest is source-specific. Images inside items are references: a URI to
read later, or bytes already embedded in the source (parquet).

``options`` is the source's block from the YAML config with paths already resolved to
absolute paths or URIs (see ``pipelines.config``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

Item = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """A registered source: its name, reader transform, restructure function, and checks."""

    name: str
    reader: Callable[[dict[str, Any]], beam.PTransform]
    restructure: Callable[[Item, dict[str, Any]], dict[str, Any]]
    check_options: Callable[[dict[str, Any]], None]
