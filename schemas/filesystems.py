"""Beam's ``FileSystems`` calls, answered without importing Beam for local paths.

Importing anything of ``apache_beam`` imports all of it (coders, typehints, io, runners:
about 3 s on the 2-core development machine), and readers of finished builds (``mmloom show``,
``verify``, ``publish``, ``annotate``) need none of it for a build on the local disk.
:class:`FileSystems` has the static methods of ``apache_beam.io.filesystems.FileSystems``
that the ``schemas`` readers and writers use, with the same arguments and results: a local
path (no ``scheme://``, the test Beam itself uses) is served with ``os`` and ``io`` the way
Beam's ``LocalFileSystem`` serves it, and anything else (``gs://...``, a compressed open,
``delete``, ``rename``) goes to Beam's ``FileSystems``, imported then.

``tests/schemas/test_filesystems.py`` compares every method with Beam's on the same files.
Bottom layer: imports nothing of the project.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

UNCOMPRESSED = "uncompressed"  # Beam's CompressionTypes.UNCOMPRESSED
AUTO = "auto"  # Beam's CompressionTypes.AUTO, the default of open and create
_SCHEME = re.compile(r"(?P<scheme>[a-zA-Z][-a-zA-Z0-9+.]*)://.*")  # Beam's URI_SCHEMA_PATTERN
_PREFIX = re.compile(r"^[^[*?]*")  # a pattern's part before its first wildcard


def is_local(path: str) -> bool:
    """Beam would serve ``path`` with its ``LocalFileSystem`` (no ``scheme://`` prefix)."""
    return _SCHEME.match(path.strip()) is None


def _beam() -> Any:
    from apache_beam.io.filesystems import FileSystems as BeamFileSystems

    return BeamFileSystems


class FileMetadata(NamedTuple):
    """What Beam's ``FileMetadata`` holds: path, size and modification time."""

    path: str
    size_in_bytes: int
    last_updated_in_seconds: float


class MatchResult(NamedTuple):
    """What Beam's ``MatchResult`` holds: the pattern and the files it matched."""

    pattern: str
    metadata_list: list[FileMetadata]


def translate_pattern(pattern: str) -> str:
    """A glob as a regular expression, with Beam's syntax: ``*`` is any run of characters but
    ``/`` and ``\\``, ``**`` any run at all, ``?`` one character, ``[...]`` a class
    (``[!...]`` negated); no quoting."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                out.append(".*")
                i += 1
            else:
                out.append(r"[^/\\]*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(r"\[")
            else:
                inside = pattern[i:j].replace("\\", "\\\\")
                i = j + 1
                if inside[0] == "!":
                    inside = "^" + inside[1:]
                elif inside[0] == "^":
                    inside = "\\" + inside
                out.append(f"[{inside}]")
        else:
            out.append(re.escape(c))
    return r"(?ms)" + "".join(out) + r"\Z"


def _metadata(path: str) -> FileMetadata:
    return FileMetadata(path, os.path.getsize(path), os.path.getmtime(path))


def _walk(root: str) -> Iterator[FileMetadata]:
    """Every file under ``root``, in ``os.walk`` order (Beam's ``LocalFileSystem._list``)."""
    if not os.path.exists(root):
        return
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                meta = _metadata(path)
            except OSError:  # gone since it was listed
                continue
            yield meta


def _match_local(pattern: str, limit: int | None) -> MatchResult:
    if pattern.endswith(("/", "\\")):
        pattern += "*"
    prefix = _PREFIX.match(pattern).group(0)
    if prefix == pattern:  # no wildcard: the path itself, when it is there
        candidates: Any = [_metadata(pattern)] if os.path.exists(pattern) else []
    else:
        folder = os.path.dirname(prefix)
        candidates = _walk(folder)
    regex = re.compile(translate_pattern(pattern))
    found: list[FileMetadata] = []
    for meta in candidates:
        if regex.match(meta.path):
            if limit is not None and len(found) >= limit:
                break
            found.append(meta)
    return MatchResult(pattern, found)


class FileSystems:
    """The subset of Beam's ``FileSystems`` that ``schemas`` uses (see the module docstring)."""

    @staticmethod
    def join(basepath: str, *paths: str) -> str:
        if is_local(basepath):
            return os.path.join(basepath, *paths)
        return _beam().join(basepath, *paths)

    @staticmethod
    def exists(path: str) -> bool:
        if is_local(path):
            return os.path.exists(path)
        return _beam().exists(path)

    @staticmethod
    def match(patterns: list[str], limits: list[int | None] | None = None) -> list[Any]:
        """Beam's ``FileSystems.match``: one result per pattern, each with its
        ``metadata_list`` (``path``, ``size_in_bytes``); the first pattern picks the
        filesystem, as in Beam."""
        if not patterns:
            return []
        if not is_local(patterns[0]):
            return _beam().match(patterns, limits)
        if limits is None:
            limits = [None] * len(patterns)
        if len(patterns) != len(limits):
            raise ValueError("Patterns and limits should be equal in length")
        return [_match_local(p, n) for p, n in zip(patterns, limits, strict=True)]

    @staticmethod
    def open(
        path: str, mime_type: str = "application/octet-stream", compression_type: str = AUTO
    ) -> BinaryIO:
        if is_local(path) and compression_type == UNCOMPRESSED:
            return open(path, "rb")
        return _beam().open(path, mime_type, compression_type)

    @staticmethod
    def create(
        path: str, mime_type: str = "application/octet-stream", compression_type: str = AUTO
    ) -> BinaryIO:
        if is_local(path) and compression_type == UNCOMPRESSED:
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            return open(path, "wb")
        return _beam().create(path, mime_type, compression_type)

    @staticmethod
    def delete(paths: list[str]) -> None:
        """Beam's (it wraps each path's error in a ``BeamIOError``, which callers read)."""
        _beam().delete(paths)

    @staticmethod
    def rename(sources: list[str], destinations: list[str]) -> None:
        """Beam's (it wraps each file's error in a ``BeamIOError``, which callers read)."""
        _beam().rename(sources, destinations)
