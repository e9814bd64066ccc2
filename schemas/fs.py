"""File helpers over Beam's filesystems (local paths, ``gs://``...), used by readers and stages.

Every read of a source's data goes through :func:`open_bounded` (or :func:`read_bytes` /
:func:`read_text` on top of it), which reads only regular files, refuses a local path whose
symlinks lead out of its source folder, and never reads more than a size cap. The build's own
outputs (``schemas.buildio``, ``schemas.store``) are read directly.

Bottom layer: imports nothing of the project but ``schemas.errors`` and
``schemas.filesystems`` (which imports Beam only for a ``scheme://`` URI; :func:`open_bounded`
imports Beam's codecs only to decompress).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import stat
from typing import Any, BinaryIO

from schemas.errors import PipelineConfigError, RecordError
from schemas.filesystems import UNCOMPRESSED, FileSystems


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
    elsewhere keeps only its last component (and its ``#fragment``: ``test.parquet#row=3``).
    ``root`` may be a file (a source's JSON file): then its folder is the root.
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
    path, hash_, fragment = uri.partition("#")
    name = posixpath.basename(path.rstrip("/"))
    return name + hash_ + fragment if name else uri


def safe_name(name: str, what: str) -> str:
    """Check an id used as a file name (``<step_id>.png``) cannot name another folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise RecordError("path_escapes_root", f"{what} {name!r} cannot be used as a file name")
    return name


def glob_root(pattern: str | None) -> str | None:
    """The folder a glob's matches must stay in (the part before its first wildcard); None
    for a plain path: a file the config names itself is read wherever its symlinks lead."""
    if not pattern:
        return None
    cut = min((pattern.find(ch) for ch in "*?[" if ch in pattern), default=-1)
    if cut < 0:
        return None
    return posixpath.dirname(pattern[:cut]) or "."


def sha256_size(path: str) -> tuple[str, int]:
    """sha256 hex digest and size of a local file or Beam filesystem URI, read in 1 MiB
    chunks (the project's one file-hash helper)."""
    digest, size = hashlib.sha256(), 0
    with FileSystems.open(path, compression_type="uncompressed") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def exists(uri: str) -> bool:
    return FileSystems.exists(uri)


GLOB_CHARS = "*?["


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a local glob: ``*`` is any run of characters but ``/``,
    ``**`` any run at all (across folders), ``?`` one character but ``/``, ``[...]`` a
    character class (``[!...]`` negated; an unclosed ``[`` is itself). Beam's own matcher
    reads ``*`` as any run of characters but ``/`` *and backslash*, so a file name holding a
    backslash vanished from a glob without a trace."""
    i, n, out = 0, len(pattern), []
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                out.append(".*")
                i += 1
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + (i < n and pattern[i] == "!")
            j += j < n and pattern[j] == "]"
            j = pattern.find("]", j)
            if j < 0:
                out.append(re.escape(c))
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
            out.append(f"[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(c))
    return re.compile("(?s)" + "".join(out) + r"\Z")


def _raise(exc: OSError) -> None:
    raise exc


def _match_local(pattern: str) -> list[str]:
    """Local paths matching ``pattern``: every non-folder entry whose path matches, including
    FIFOs and dangling links (readers turn them into dead letters; nothing is skipped). A
    pattern without wildcards is the path itself, when it exists. A folder that cannot be
    listed raises its ``OSError``."""
    if pattern.endswith("/"):
        pattern += "*"
    cut = min((pattern.find(ch) for ch in GLOB_CHARS if ch in pattern), default=-1)
    if cut < 0:
        return [pattern] if os.path.exists(pattern) else []
    root = os.path.dirname(pattern[:cut])
    top = root or "."
    if not os.path.isdir(top):
        return []
    regex = glob_regex(pattern)
    # without ``**`` a match lies a fixed number of folders below ``root``
    depth = None if "**" in pattern else pattern[len(root) :].strip("/").count("/")
    found = []
    for folder, subfolders, names in os.walk(top, onerror=_raise):
        rel = os.path.relpath(folder, top)
        level = 0 if rel == "." else rel.count(os.sep) + 1
        if depth is not None and level >= depth:
            subfolders.clear()
        for name in names:
            path = (
                os.path.join(folder, name)
                if root
                else os.path.relpath(os.path.join(folder, name), top)
            )
            if regex.match(path):
                found.append(path)
    return sorted(found)


def match(pattern: str) -> list[str]:
    """Paths matching a glob, sorted for determinism. Local globs are matched here
    (:func:`glob_regex`: every file whose name matches, whatever characters the name holds);
    other Beam filesystems by ``FileSystems.match``.

    Raises:
        OSError: a local folder on the way cannot be listed (not a bad input: the
            environment's fault).
    """
    if is_local(pattern):
        return _match_local(pattern)
    result = FileSystems.match([pattern])[0]
    return sorted(m.path for m in result.metadata_list)


def is_local(uri: str) -> bool:
    """A local path (Beam's local filesystem), not a ``scheme://`` URI."""
    return "://" not in uri


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def inside(path: str, root: str) -> bool:
    """Is local ``path`` (resolved) ``root`` (resolved) or below it?"""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def too_large(name: str, size: int | str, max_bytes: int) -> RecordError:
    return RecordError("file_too_large", f"{name}: {size} bytes > the {max_bytes}-byte read cap")


class _Capped(io.RawIOBase):
    """A read-only view of ``f`` that refuses to go past ``max_bytes`` (``file_too_large``).

    A read at or past the cap fetches one byte at most: data there means the file grew beyond
    the cap after its size was checked. Seeks pass through (parquet readers seek to the footer).
    """

    mode = "rb"  # Beam's CompressedFile asks

    def __init__(self, f: Any, max_bytes: int, name: str) -> None:
        super().__init__()
        self._f = f
        self._max = max_bytes
        self._name = name
        self._pos = 0
        seekable = getattr(f, "seekable", False)
        self._seekable = bool(seekable() if callable(seekable) else seekable)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def readinto(self, buffer: Any) -> int:
        room = self._max - self._pos
        if room <= 0:
            if self._f.read(1):
                raise too_large(self._name, f"more than {self._max}", self._max)
            return 0
        data = self._f.read(min(len(buffer), room))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        self._pos = self._f.seek(offset, whence)
        if self._pos is None:  # some Beam file objects return None
            self._pos = self._f.tell()
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            try:
                self._f.close()
            finally:
                super().close()


def _open_local(uri: str, root: str | None, name: str) -> tuple[Any, int]:
    """Open a local regular file without following a symlink out of ``root``; never blocks."""
    real = os.path.realpath(uri)
    if root is not None and not inside(real, os.path.realpath(root)):
        raise RecordError("path_escapes_root", f"{name} resolves to a file outside its folder")
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; O_NOFOLLOW:
    # ``real`` has no symlink left, so one swapped in since realpath is refused (ELOOP)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(real, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecordError(
                "not_a_regular_file", f"{name} is a {_kind(st.st_mode)}, not a regular file"
            )
        return os.fdopen(fd, "rb", buffering=0), st.st_size
    except BaseException:
        os.close(fd)
        raise


def open_bounded(
    uri: str, *, max_bytes: int, root: str | None = None, decompress: bool = False
) -> BinaryIO:
    """Open ``uri`` for reading under the safe-read rules; a seekable binary file object.

    Local paths: symlinks are resolved and, given ``root`` (the source folder the path was
    taken from), a target outside ``realpath(root)`` is refused; the file is opened without
    blocking (a FIFO cannot hang the build) and must be a regular file. Other URIs (``gs://``,
    any Beam filesystem): the size comes from ``FileSystems.match``; such stores hold only
    objects, and ``root`` is not checked (they have no symlinks). Either way a size over
    ``max_bytes`` is refused, and reads stop at ``max_bytes`` (a file that grows after the
    check is refused when read past the cap).

    Args:
        uri: a local path or a Beam filesystem URI.
        max_bytes: the read cap (the ``limits`` block of the build config).
        root: the source folder ``uri`` must stay in (local paths), or None.
        decompress: decompress by extension (``.gz``, ``.bz2``...), as Beam's ``AUTO``;
            the cap then applies to the compressed file and, again, to what it expands to.

    Raises:
        RecordError: ``path_escapes_root``, ``not_a_regular_file``, ``file_too_large``.
        OSError: the file does not exist or cannot be opened (callers name the reason).
    """
    name = display_path(uri, root)
    if is_local(uri):
        f, size = _open_local(uri, root, name)
        if size > max_bytes:
            f.close()
            raise too_large(name, size, max_bytes)
    else:
        found = FileSystems.match([uri])[0].metadata_list
        if not found:
            raise FileNotFoundError(f"{name} does not exist")
        size = found[0].size_in_bytes
        if size > max_bytes:  # before opening: nothing is fetched
            raise too_large(name, size, max_bytes)
        f = FileSystems.open(uri, compression_type=UNCOMPRESSED)
    raw: BinaryIO = io.BufferedReader(_Capped(f, max_bytes, name))
    if not decompress:
        return raw
    # Beam's codecs (imported here: a plain read of a local file needs no Beam)
    from apache_beam.io.filesystem import CompressedFile, CompressionTypes

    kind = CompressionTypes.detect_compression_type(uri)
    if kind != CompressionTypes.UNCOMPRESSED:
        expanded = CompressedFile(raw, compression_type=kind)
        raw = io.BufferedReader(_Capped(expanded, max_bytes, f"{name} (decompressed)"))
    return raw


def read_bytes(uri: str, *, max_bytes: int, root: str | None = None) -> bytes:
    """All of ``uri`` under the rules of :func:`open_bounded`."""
    with open_bounded(uri, max_bytes=max_bytes, root=root) as f:
        return f.read()


def read_text(uri: str, *, max_bytes: int, root: str | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8."""
    return read_bytes(uri, max_bytes=max_bytes, root=root).decode("utf-8")


def require_path(options: dict[str, Any], key: str, source: str) -> str:
    """Config check: ``options[key]`` is set and exists (file, folder or glob with matches)."""
    value = options.get(key)
    if not value:
        raise PipelineConfigError(f"sources.{source}.{key} is required in the config")
    if any(ch in value for ch in GLOB_CHARS):
        try:
            found = match(value)
        except OSError as exc:
            raise PipelineConfigError(
                f"sources.{source}.{key}: cannot list {value}: {exc.strerror} "
                f"({exc.filename}); check the folder's permissions"
            ) from exc
        if not found:
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
