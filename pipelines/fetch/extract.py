"""Safe, bounded, all-or-nothing extraction of zip and tar archives.

* **Safe.** Every member name is checked: an absolute path, a drive letter, a ``..`` that
  climbs out of the target folder (zip-slip), a symbolic or hard link, a device or a FIFO
  makes the whole archive refused with :class:`UnsafeArchiveError`.
* **Bounded** (:class:`~pipelines.fetch.limits.FetchLimits`). At most ``max_members``
  members, and at most ``max_unpacked`` bytes written from one archive. A zip is checked
  before anything is written: its member count, and the sizes its member headers declare
  (which ``zipfile`` holds each member to; the disk's free space is checked against them
  too). A tar is streamed: each member's size, from its header, is added before the member is
  written, so an archive that would pass the cap is refused before it does, and free space is
  checked every 256 MB. Either way: :class:`ArchiveTooLargeError`.
* **All or nothing.** Members are written into a staging folder beside the target
  (``.mmloom-unpacking-<target>-<archive>``), and moved into place only once the whole
  archive has been read. A refused, unreadable (:class:`CorruptArchiveError`) or interrupted
  extraction (an error, KeyboardInterrupt, SIGTERM by way of ``mmloom fetch``) removes the
  staging folder and leaves the target as it was; the staging folder of a killed process
  is removed by the next extraction of the same archive. (Only an interruption during the
  final renames, which are quick, can leave some files moved in and others not; ``mmloom
  fetch`` writes its stamp after them, so the next fetch lays the archive out again.)

A ``select`` function maps each member name to the relative path it is written to, or
``None`` to skip it, so only what the build needs is unpacked.
"""

from __future__ import annotations

import errno
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pipelines.fetch.limits import (
    DiskWatch,
    FetchLimits,
    check_disk,
    human,
    write_failed,
)
from schemas.errors import MmloomError

Select = Callable[[str], "str | None"]
CHUNK = 1 << 20
STAGING_PREFIX = ".mmloom-unpacking-"


class RefusedFileError(MmloomError):
    """A fetched file that cannot be laid out as it is (an unsafe, too large or unreadable
    archive, or a file that is not what it should be). ``mmloom fetch`` does not trust it."""


class UnsafeArchiveError(RefusedFileError):
    """An archive member would leave the target folder, or is a link or a special file."""


class ArchiveTooLargeError(RefusedFileError):
    """An archive would unpack to more bytes, or hold more members, than the caps allow."""


class CorruptArchiveError(RefusedFileError):
    """The archive cannot be read to the end (truncated, not an archive, bad data)."""


# what reading a damaged archive raises (OSError only without an errno: gzip and bz2 data
# errors; an OSError with an errno is the disk's fault and is reported as such)
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,  # a zip compression method zipfile lacks
    RuntimeError,  # an encrypted zip member
    OSError,
)


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive.name}: member {member!r} {why}. The archive is not "
        "what the source publishes (or was tampered with); delete it and fetch again, and "
        "report it if it happens again"
    )


def _too_large(archive: Path, what: str, option: str) -> ArchiveTooLargeError:
    return ArchiveTooLargeError(
        f"refusing to extract {archive.name}: {what}. Nothing of it was kept. If the archive "
        f"is the one the source publishes and really is that large, raise the cap with "
        f"{option} and run the same command again; otherwise delete it and fetch again"
    )


@contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Turn what a damaged archive raises into :class:`CorruptArchiveError`."""
    try:
        yield
    except MmloomError:
        raise
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise MmloomError(
                f"could not read {archive}: {exc.strerror}. Check its disk and run the same "
                "command again"
            ) from None
        raise CorruptArchiveError(
            f"{archive.name} cannot be read as a {_kind(archive)} archive "
            f"({type(exc).__name__}: {exc}); it is truncated, damaged or not the published "
            "file (a web page saved in its place, say). Nothing of it was kept. Delete it and "
            "fetch again"
        ) from None


def _kind(archive: Path) -> str:
    return "zip" if archive.name.endswith(".zip") else "tar"


def safe_relpath(archive: Path, name: str) -> str:
    """The normalised relative path of a member, or :class:`UnsafeArchiveError`."""
    rel = name.replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise _refuse(archive, name, "has an absolute path")
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../") or "\x00" in norm:
        raise _refuse(archive, name, "leaves the target folder")
    return norm


def _target(dest: Path, rel: str, archive: Path, member: str) -> Path:
    out = (dest / rel).resolve()
    root = dest.resolve()
    if out == root:
        raise _refuse(archive, member, "has no file name")
    if root not in out.parents:
        raise _refuse(archive, member, f"would be written outside {dest}")
    return out


def _identity(name: str) -> str | None:
    return name


def staging_dir(archive: Path, dest: Path) -> Path:
    """The folder ``archive`` is unpacked into before its files move into ``dest``."""
    return dest.parent / f"{STAGING_PREFIX}{dest.name}-{archive.name}"


class _Writer:
    """Writes members into the staging folder, counting bytes against the cap."""

    def __init__(self, archive: Path, staging: Path, limits: FetchLimits) -> None:
        self.archive = archive
        self.staging = staging
        self.limits = limits
        self.total = 0
        self.watch = DiskWatch(staging.parent, f"unpacking {archive.name}")
        self.written: dict[str, None] = {}  # relative paths, in order, once each

    def reserve(self, member: str, size: int) -> None:
        """Count ``size`` more bytes before they are written; refuse past the cap."""
        self.total += size
        if self.total > self.limits.max_unpacked:
            raise _too_large(
                self.archive,
                f"it unpacks to more than {human(self.limits.max_unpacked)} (passed at member "
                f"{member!r}), the cap on what one archive may write",
                "--max-unpacked SIZE (or MMLOOM_FETCH_MAX_UNPACKED)",
            )

    def write(self, src: IO[bytes], rel: str, size: int, member: str) -> None:
        """Copy exactly ``size`` bytes of ``src`` to ``staging/rel``."""
        out = self.staging / rel
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            f = out.open("wb")
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
                # the staging folder is fresh: only the archive's own members can clash
                raise _refuse(
                    self.archive, member, "is both a file and a folder in this archive"
                ) from None
            raise write_failed(out, exc, f"unpacking {self.archive.name}") from None
        left = size
        with f:
            while True:
                with _reading(self.archive):
                    block = src.read(min(CHUNK, left + 1))
                if not block:
                    break
                if len(block) > left:
                    raise CorruptArchiveError(
                        f"{self.archive.name}: member {member!r} holds more than the "
                        f"{size} bytes its header declares; the archive is damaged or "
                        "crafted. Nothing of it was kept. Delete it and fetch again"
                    )
                try:
                    f.write(block)
                except OSError as exc:
                    raise write_failed(out, exc, f"unpacking {self.archive.name}") from None
                left -= len(block)
                self.watch.wrote(len(block))
        self.written[rel] = None


def _extract_zip(archive: Path, dest: Path, w: _Writer, select: Select) -> None:
    """Check every member of a zip (names, kinds, count, declared sizes), then write."""
    limits = w.limits
    with _reading(archive), zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise _too_large(
                archive,
                f"it holds {len(infos)} members, more than the cap of {limits.max_members}",
                "--max-members N (or MMLOOM_FETCH_MAX_MEMBERS)",
            )
        plan = []
        for info in infos:
            rel = safe_relpath(archive, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no type
            if kind == stat.S_IFLNK:
                raise _refuse(archive, info.filename, "is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse(archive, info.filename, "is not a regular file")
            if info.is_dir():
                continue
            target_rel = select(rel)
            if target_rel is None:
                continue
            target_rel = safe_relpath(archive, target_rel)
            _target(dest, target_rel, archive, info.filename)
            w.reserve(info.filename, info.file_size)
            plan.append((info, target_rel))
        check_disk(w.staging.parent, w.total, f"unpacking {archive.name} ({human(w.total)})")
        for info, target_rel in plan:
            with zf.open(info) as src:
                w.write(src, target_rel, info.file_size, info.filename)


def _extract_tar(archive: Path, dest: Path, w: _Writer, select: Select) -> None:
    """Stream a (compressed) tar, checking each member before it is written."""
    limits = w.limits
    with _reading(archive), tarfile.open(archive, mode="r|*") as tf:
        for count, member in enumerate(tf, 1):
            if count > limits.max_members:
                raise _too_large(
                    archive,
                    f"it holds more than {limits.max_members} members, the cap",
                    "--max-members N (or MMLOOM_FETCH_MAX_MEMBERS)",
                )
            rel = safe_relpath(archive, member.name)
            if member.issym() or member.islnk():
                raise _refuse(archive, member.name, "is a link")
            if member.isdir():
                continue
            if not member.isreg():
                raise _refuse(archive, member.name, "is not a regular file")
            target_rel = select(rel)
            if target_rel is None:
                continue
            target_rel = safe_relpath(archive, target_rel)
            _target(dest, target_rel, archive, member.name)
            w.reserve(member.name, member.size)
            src = tf.extractfile(member)
            assert src is not None  # a regular file
            w.write(src, target_rel, member.size, member.name)


def _move_into_place(w: _Writer, dest: Path) -> list[Path]:
    """Move every staged file to its place under ``dest`` (a rename: same filesystem)."""
    placed: list[Path] = []
    for rel in w.written:
        src = w.staging / rel
        out = _target(dest, rel, w.archive, rel)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, out)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copyfile(src, out)  # dest on another filesystem than its parent
        except OSError as exc:
            raise write_failed(out, exc, f"unpacking {w.archive.name}") from None
        placed.append(out)
    return placed


def extract(
    archive: Path,
    dest: Path,
    select: Select = _identity,
    limits: FetchLimits | None = None,
) -> list[Path]:
    """Extract the selected members of a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` into ``dest``.

    Returns the files written (resolved paths). Raises a :class:`RefusedFileError`
    (unsafe, too large, unreadable), :class:`~pipelines.fetch.limits.DiskSpaceError` or
    another :class:`~schemas.errors.MmloomError` for a fault of the disk; in every case, and
    on KeyboardInterrupt, nothing of the archive is left in ``dest`` or beside it.
    """
    limits = limits or FetchLimits()
    staging = staging_dir(archive, dest)
    if staging.exists():  # left by a killed run: ours by its name
        shutil.rmtree(staging)
    w = _Writer(archive, staging, limits)
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, dest, w, select)
        else:
            _extract_tar(archive, dest, w, select)
        return _move_into_place(w, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
