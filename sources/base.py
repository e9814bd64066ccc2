"""The contract every source reader follows, and the file helpers they share.

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

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.errors import PipelineConfigError, RecordError

Item = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """A registered source: its name, reader transform, restructure function, and checks."""

    name: str
    reader: Callable[[dict[str, Any]], beam.PTransform]
    restructure: Callable[[Item, dict[str, Any]], dict[str, Any]]
    check_options: Callable[[dict[str, Any]], None]


def join(root: str, *parts: str) -> str:
    return FileSystems.join(root, *parts) if parts else root


def resolve_under(root: str, relpath: str) -> str:
    """Join ``relpath`` (taken from source data) onto ``root``, refusing to leave ``root``.

    Raises:
        RecordError(path_escapes_root): ``relpath`` is absolute, has a scheme, or climbs out
        of ``root`` with ``..``.
    """
    if not isinstance(relpath, str) or not relpath:
        raise RecordError("bad_image_path", f"image path {relpath!r} is not a non-empty string")
    rel = relpath.replace("\\", "/")
    if rel.startswith("/") or "://" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise RecordError("path_escapes_root", f"image path {relpath!r} is absolute")
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        raise RecordError("path_escapes_root", f"image path {relpath!r} leaves {root}")
    return join(root, norm)


def safe_name(name: str, what: str) -> str:
    """Check an id used as a file name (``<step_id>.png``) cannot name another folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise RecordError("path_escapes_root", f"{what} {name!r} cannot be used as a file name")
    return name


def exists(uri: str) -> bool:
    return FileSystems.exists(uri)


def match(pattern: str) -> list[str]:
    """Paths matching a glob (any Beam filesystem), sorted for determinism."""
    result = FileSystems.match([pattern])[0]
    return sorted(m.path for m in result.metadata_list)


def read_bytes(uri: str) -> bytes:
    with FileSystems.open(uri, compression_type="uncompressed") as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def require_path(options: dict[str, Any], key: str, source: str) -> str:
    """Config check: ``options[key]`` is set and exists (file, folder or glob with matches)."""
    value = options.get(key)
    if not value:
        raise PipelineConfigError(f"sources.{source}.{key} is required in the config")
    if any(ch in value for ch in "*?["):
        if not match(value):
            raise PipelineConfigError(
                f"sources.{source}.{key}: no file matches {value}; check the path in the config"
            )
        return value
    if not exists(value) and not exists(value.rstrip("/") + "/"):
        raise PipelineConfigError(
            f"sources.{source}.{key}: {value} does not exist; fix the path in the config or "
            f"disable the source with `enabled: false`"
        )
    return value


def list_dir_stems(folder: str) -> dict[str, str]:
    """Map file stem -> path for every file directly in ``folder`` (resolve images by stem)."""
    out: dict[str, str] = {}
    for path in match(join(folder, "*")):
        base = posixpath.basename(path.rstrip("/"))
        stem, dot, _ = base.rpartition(".")
        out.setdefault(stem if dot else base, path)
    return out
