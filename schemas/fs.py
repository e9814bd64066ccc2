"""File helpers over Beam's filesystems (local paths, ``gs://``...), used by readers and stages.

Bottom layer: imports nothing of the project but ``schemas.errors``.
"""

from __future__ import annotations

import posixpath
from typing import Any

from apache_beam.io.filesystems import FileSystems

from schemas.errors import PipelineConfigError, RecordError


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


def display_path(uri: str, root: str | None) -> str:
    """How dead letters name ``uri``: relative to ``root`` (a source folder) when inside it.

    Dead-letter details and ids must not carry machine paths (they differ between machines and
    runs), so a path under ``root`` is written relative to it (``images/1.png``); a path
    elsewhere keeps only its last component. ``root`` may be a file (a source's JSON file):
    then its folder is the root.
    """
    if not uri:
        return uri
    if root:
        base = root.rstrip("/")
        for r in (base, posixpath.dirname(base)):
            if r and (uri == r or uri.startswith(r + "/")):
                rel = uri[len(r) :].lstrip("/")
                if rel:
                    return rel
    return posixpath.basename(uri.rstrip("/")) or uri


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
