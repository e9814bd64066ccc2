"""Safe extraction of zip and tar archives.

Every member name is checked before anything is written: an absolute path, a drive letter, a
``..`` that climbs out of the target folder (zip-slip), a symbolic or hard link, a device or a
FIFO makes the whole archive refused with :class:`UnsafeArchiveError`. Zip archives are
checked in full first (their directory is at the end), so nothing of a refused zip is
written; tar archives are streamed and refused at the first unsafe member (members before
it, which passed the same checks, stay). A ``select`` function maps each member name to the
relative path it is written to, or ``None`` to skip it, so only what the build needs is
unpacked.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from schemas.errors import MmloomError

Select = Callable[[str], "str | None"]


class UnsafeArchiveError(MmloomError):
    """An archive member would leave the target folder, or is a link or a special file."""


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing to extract {archive.name}: member {member!r} {why}. The archive is not "
        "what the source publishes (or was tampered with); delete it and fetch again, and "
        "report it if it happens again"
    )


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
    if out != root and root not in out.parents:
        raise _refuse(archive, member, f"would be written outside {dest}")
    return out


def _write(src, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".extracting")
    with tmp.open("wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
    os.replace(tmp, out)


def _identity(name: str) -> str | None:
    return name


def zip_uncompressed_size(archive: Path, select: Select = _identity) -> int:
    with zipfile.ZipFile(archive) as zf:
        return sum(
            i.file_size for i in zf.infolist() if not i.is_dir() and select(i.filename) is not None
        )


def extract_zip(archive: Path, dest: Path, select: Select = _identity) -> list[Path]:
    """Extract the selected members of a zip into ``dest``; all members are checked first."""
    written: list[Path] = []
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
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
            plan.append((info, _target(dest, target_rel, archive, info.filename)))
        for info, out in plan:
            with zf.open(info) as src:
                _write(src, out)
            written.append(out)
    return written


def extract_tar(archive: Path, dest: Path, select: Select = _identity) -> list[Path]:
    """Extract the selected members of a (compressed) tar into ``dest``, streaming."""
    written: list[Path] = []
    with tarfile.open(archive, mode="r|*") as tf:
        for member in tf:
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
            out = _target(dest, target_rel, archive, member.name)
            src = tf.extractfile(member)
            assert src is not None  # a regular file
            _write(src, out)
            written.append(out)
    return written


def extract(archive: Path, dest: Path, select: Select = _identity) -> list[Path]:
    """Extract a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` by its name."""
    if archive.name.endswith(".zip"):
        return extract_zip(archive, dest, select)
    return extract_tar(archive, dest, select)
