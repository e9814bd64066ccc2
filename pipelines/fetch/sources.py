"""How ``mmloom fetch`` carries out a source's plan: the registry's specs, laying files out.

Each source declares what it downloads in its own folder (``sources/<name>/fetch.py``: a
:class:`sources.spec.FetchSpec` whose plan lists the files of the chosen splits, each a
:class:`sources.spec.FileJob` with its URL from the source's ``checksums.tsv`` and how it is
laid out, :class:`~sources.spec.Place` or :class:`~sources.spec.Unpack`, into
``<to>/<source>/`` in the layout its reader expects; plus the config block that points at the
result). This module finds those specs in the registry (:func:`specs`) and lays out a verified
file (:func:`install`). Only the chosen splits' files are downloaded, and only the members the
build reads are unpacked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelines.fetch import extract as ex
from pipelines.fetch.limits import FetchLimits, check_disk, write_failed
from sources import get_source, names
from sources.spec import FetchSpec, FileJob, Place, Plan, Unpack

__all__ = ["FetchSpec", "FileJob", "Plan", "install", "looks_whole", "specs"]


def specs() -> dict[str, FetchSpec]:
    """Source name -> its fetch spec, for every registered source that has one."""
    out = {}
    for name in names():
        spec = get_source(name).fetch
        if spec is not None:
            out[name] = spec
    return out


# ---------------------------------------------------------------- install helpers


def looks_whole(src: Path) -> None:
    """Refuse a file that is plainly not a whole one of its kind: a ``.json`` must start with
    ``{`` or ``[`` and end with ``}`` or ``]``, a ``.parquet`` must begin and end with its
    magic ``PAR1``. Catches truncated downloads and web pages saved in a file's place."""
    size = src.stat().st_size
    with src.open("rb") as f:
        head = f.read(4096)
        f.seek(max(size - 4096, 0))
        tail = f.read()
    whole = True
    if src.name.endswith(".json"):
        whole = head.lstrip()[:1] in (b"{", b"[") and tail.rstrip()[-1:] in (b"}", b"]")
    elif src.name.endswith(".parquet"):
        whole = size >= 12 and head[:4] == b"PAR1" and tail[-4:] == b"PAR1"
    if not whole:
        kind = src.name.rsplit(".", 1)[-1]
        raise ex.RefusedFileError(
            f"{src.name} is not a whole {kind} file ({size} bytes): it is truncated or not "
            "the published file (a web page saved in its place, say). Delete it and fetch again"
        )


def install(job: FileJob, src: Path, root: Path, limits: FetchLimits) -> None:
    """Lay the verified download ``src`` of ``job`` out under ``root`` (``<to>/<source>``);
    raises extract.RefusedFileError when the file is not one that can be laid out."""
    if isinstance(job.install, Place):
        _place(job.install.path, src, root)
    elif isinstance(job.install, Unpack):
        _unpack(job.install.selector(root), src, root, limits)
    else:
        raise TypeError(f"{job.filename}: unknown install step {job.install!r}")


def _place(rel: str, src: Path, root: Path) -> None:
    """Link (or copy, across filesystems) the download to ``<source dir>/<rel>``, once
    :func:`looks_whole` accepts it."""
    looks_whole(src)
    out = root / rel
    tmp = out.with_name(f".{out.name}.mmloom-placing")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            check_disk(out.parent, src.stat().st_size, f"a copy of {src.name}")
            shutil.copyfile(src, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(out, exc, f"placing {src.name}") from None


def _unpack(select: ex.Select, src: Path, root: Path, limits: FetchLimits) -> None:
    """Extract the members ``select`` maps to a path (see :func:`extract.extract`)."""
    written = ex.extract(src, root, select, limits)
    if not written:
        raise ex.RefusedFileError(
            f"{src.name} holds none of the files the build needs; it is not the published "
            "archive. Delete it and fetch again"
        )
