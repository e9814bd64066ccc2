"""What ``mmloom fetch`` downloads for each source and split, and how it lays the files out.

Each source has a *plan*: the files of the chosen splits (:class:`FileJob`), each with its
official URL (or, where the host cannot be scripted, where a person gets it), and how it
is installed into ``<to>/<source>/`` in the layout the source's README and reader expect;
plus the config block that points at the result. Only the chosen splits' files are
downloaded, and only the members the build reads are unpacked.

URLs, sizes and sha256 sums live in ``sources/<name>/checksums.tsv`` (see
:mod:`pipelines.fetch.checksums`); the URLs below are the defaults used when a row is absent.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.fetch import extract as ex
from pipelines.fetch.limits import FetchLimits, check_disk, write_failed
from schemas.errors import MmloomError

# (the verified download, <to>/<source>, the caps) -> None; raises
# extract.RefusedFileError when the file is not one that can be laid out
Install = Callable[[Path, Path, FetchLimits], None]

COCO_BASE = "http://images.cocodataset.org"
VIST_BASE = "https://visionandlanguage.net/VIST/json_files"
VIST_PAGE = "https://visionandlanguage.net/VIST/dataset.html"
# VIST's image archives are Google Drive files linked from VIST_PAGE (ids as published there)
VIST_DRIVE = {
    "test_images.tar.gz": "0ByQS_kT8kViSTHJ0cGxSVW1SRFk",
    "val_images.tar.gz": "0ByQS_kT8kViSWmtRa1lMcG1EaHc",
    "train_split.0.tar.gz": "0ByQS_kT8kViSeEpDajIwOUFhaGc",
    "train_split.1.tar.gz": "0ByQS_kT8kViSZnZPY1dmaHJzMHc",
    "train_split.2.tar.gz": "0ByQS_kT8kViSb0VjVDJ3am40VVE",
    "train_split.3.tar.gz": "0ByQS_kT8kViSTmQtd1VfWWFyUHM",
    "train_split.4.tar.gz": "0ByQS_kT8kViSQ1ozYmlITXlUaDQ",
    "train_split.5.tar.gz": "0ByQS_kT8kViSTVY1MnFGV0JiVkk",
    "train_split.6.tar.gz": "0ByQS_kT8kViSYmhmbnp6d2I4a2M",
    "train_split.7.tar.gz": "0ByQS_kT8kViSZl9aNGVuX0llcEU",
    "train_split.8.tar.gz": "0ByQS_kT8kViSWXJ3R3hsZllsNVk",
    "train_split.9.tar.gz": "0ByQS_kT8kViSR2N4cFpweURhTjg",
    "train_split.10.tar.gz": "0ByQS_kT8kViScllKWnlaVU53Skk",
    "train_split.11.tar.gz": "0ByQS_kT8kViSV2QxZW1rVXcxT1U",
    "train_split.12.tar.gz": "0ByQS_kT8kViSNGNPTEFhdGxkMnM",
}
MATHVISTA_GITHUB = "https://raw.githubusercontent.com/lupantech/MathVista"
# the commits the sample's files were taken from (sample/mathvista/SOURCE.md)
MATHVISTA_TESTMINI_COMMIT = "452b0f83e0079029fb48d1d1b606d3954d812db1"
MATHVISTA_QUERY_COMMIT = "eb2f989ad96af3c6b30e8e0321f5e9f8ed6bb53d"
MATHVISTA_HUB = "hf://datasets/AI4Math/MathVista@main"
MATHVISTA_TESTMINI_PARQUET = "testmini-00000-of-00001-725687bf7a18d64b.parquet"
REMI_HUB = "hf://datasets/mehrankazemi/ReMI@main"
VGSI_PAGE = (
    "the Google Drive folder linked from https://github.com/YueYANG1996/wikiHow-VGSI "
    "(https://drive.google.com/drive/folders/1hjjcNSUSqv8AbA7R-5lIKmui-ySCEWJw)"
)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class FileJob:
    """One published file: where it comes from and how it is laid out.

    Attributes:
        filename: the row key in checksums.tsv and the name under ``downloads/`` (unique
            within the source).
        url: default URL: ``http(s)://...`` or ``hf://datasets/<repo>@<revision>/<path>``.
        install: lays the verified file out under ``<to>/<source>/``.
        manual: non-empty when the host cannot be scripted: where a person gets the file.
        size_note: the published size, for messages (``~35 GB``).
    """

    filename: str
    url: str
    install: Install
    manual: str = ""
    size_note: str = ""


@dataclass(frozen=True)
class Plan:
    source: str
    splits: tuple[str, ...]
    jobs: list[FileJob]
    config: dict[str, Any] = field(default_factory=dict)  # paths relative to <to>


@dataclass(frozen=True)
class SourceSpec:
    name: str
    splits: tuple[str, ...]
    default_splits: tuple[str, ...]
    plan: Callable[[tuple[str, ...], dict[str, Any]], Plan]
    single_split: bool = False


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


def place(rel: str) -> Install:
    """Link (or copy, across filesystems) the download to ``<source dir>/<rel>``, once
    :func:`looks_whole` accepts it."""

    def install(src: Path, root: Path, limits: FetchLimits) -> None:
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

    return install


def unpack(select: ex.Select) -> Install:
    """Extract the members ``select`` maps to a path (see :func:`extract.extract`)."""

    def install(src: Path, root: Path, limits: FetchLimits) -> None:
        written = ex.extract(src, root, select, limits)
        if not written:
            raise ex.RefusedFileError(
                f"{src.name} holds none of the files the build needs; it is not the published "
                "archive. Delete it and fetch again"
            )

    return install


def by_basename(wanted: dict[str, str]) -> ex.Select:
    """Members whose file name is a key of ``wanted`` go to the mapped path, wherever they
    sit in the archive."""
    return lambda name: wanted.get(posixpath.basename(name))


def images_into(folder: str) -> ex.Select:
    """Every image member, flattened into ``folder/<file name>``."""

    def select(name: str) -> str | None:
        base = posixpath.basename(name)
        if base.startswith(".") or not base.lower().endswith(IMAGE_EXTS):
            return None
        return f"{folder}/{base}"

    return select


# ---------------------------------------------------------------- the five sources


def plan_coco(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    (split,) = splits
    want = {
        f"annotations/captions_{split}2017.json": f"annotations/captions_{split}2017.json",
        f"annotations/instances_{split}2017.json": f"annotations/instances_{split}2017.json",
    }
    folder = f"{split}2017"

    def images(name: str) -> str | None:
        return name if name.startswith(f"{folder}/") and not name.endswith("/") else None

    jobs = [
        FileJob(
            "annotations_trainval2017.zip",
            f"{COCO_BASE}/annotations/annotations_trainval2017.zip",
            unpack(want.get),
            size_note="253 MB",
        ),
        FileJob(
            f"{folder}.zip",
            f"{COCO_BASE}/zips/{folder}.zip",
            unpack(images),
            size_note={"val": "816 MB", "train": "19.3 GB"}[split],
        ),
    ]
    return Plan("coco", splits, jobs, {"root": "coco", "split": split})


def plan_vist(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    sis = {f"{s}.story-in-sequence.json": f"sis/{s}.story-in-sequence.json" for s in splits}
    dii = {
        f"{s}.description-in-isolation.json": f"dii/{s}.description-in-isolation.json"
        for s in splits
    }
    jobs = [
        FileJob(
            "SIS-with-labels.tar.gz",
            f"{VIST_BASE}/story-in-sequence/SIS-with-labels.tar.gz",
            unpack(by_basename(sis)),
            size_note="~23 MB",
        ),
        FileJob(
            "DII-with-labels.tar.gz",
            f"{VIST_BASE}/description-in-isolation/DII-with-labels.tar.gz",
            unpack(by_basename(dii)),
            size_note="~18 MB",
        ),
    ]
    sizes = {"test_images.tar.gz": "~35 GB", "val_images.tar.gz": "~28 GB"}
    for split in splits:
        names = (
            [f"train_split.{i}.tar.gz" for i in range(13)]
            if split == "train"
            else [f"{split}_images.tar.gz"]
        )
        for name in names:
            drive = f"https://drive.google.com/open?id={VIST_DRIVE[name]}"
            jobs.append(
                FileJob(
                    name,
                    drive,
                    unpack(images_into(f"images/{split}")),
                    manual=f"{drive} (linked from {VIST_PAGE}, a Google Drive file)",
                    size_note=sizes.get(name, "13-27 GB"),
                )
            )
    config = {
        "sis": "vist/sis/*.story-in-sequence.json",
        "dii": "vist/dii/*.description-in-isolation.json",
        "images": "vist/images",
    }
    return Plan("vist", splits, jobs, config)


def plan_mathvista(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    layout = options.get("mathvista_layout", "parquet")
    if layout == "parquet":
        jobs = [
            FileJob(
                MATHVISTA_TESTMINI_PARQUET,
                f"{MATHVISTA_HUB}/data/{MATHVISTA_TESTMINI_PARQUET}",
                place(f"data/{MATHVISTA_TESTMINI_PARQUET}"),
                size_note="142 MB",
            )
        ]
        config = {"parquet": "mathvista/data/testmini-*.parquet", "splits": list(splits)}
        return Plan("mathvista", splits, jobs, config)

    def images_of_testmini(src: Path, root: Path, limits: FetchLimits) -> None:
        listing = root / "data" / "testmini.json"
        try:
            problems = json.loads(listing.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MmloomError(
                f"cannot read {listing} ({exc}), which says which images to unpack; delete "
                "it and its stamp (.mmloom-fetch/testmini.json.done) and fetch again"
            ) from None
        if not isinstance(problems, dict):
            raise MmloomError(f"{listing} is not the MathVista problem listing; delete it")
        wanted = {p["image"] for p in problems.values() if isinstance(p, dict) and p.get("image")}
        unpack(lambda name: f"data/{name}" if name in wanted else None)(src, root, limits)

    jobs = [
        FileJob(
            "testmini.json",
            f"{MATHVISTA_GITHUB}/{MATHVISTA_TESTMINI_COMMIT}/data/testmini.json",
            place("data/testmini.json"),
        ),
        FileJob(
            "query.json",
            f"{MATHVISTA_GITHUB}/{MATHVISTA_QUERY_COMMIT}/data/query.json",
            place("data/query.json"),
        ),
        FileJob(
            "images.zip", f"{MATHVISTA_HUB}/images.zip", images_of_testmini, size_note="~866 MB"
        ),
    ]
    return Plan("mathvista", splits, jobs, {"root": "mathvista/data", "splits": list(splits)})


def plan_remi(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    sizes = {"train": "~5 MB", "test": "~561 MB"}
    jobs = [
        FileJob(
            f"{s}.parquet", f"{REMI_HUB}/{s}.parquet", place(f"{s}.parquet"), size_note=sizes[s]
        )
        for s in splits
    ]
    return Plan("remi", splits, jobs, {"parquet": "remi/*.parquet"})


def plan_wikihow(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    def images(name: str) -> str | None:
        base = posixpath.basename(name)
        if not base.lower().endswith(".png") or base.startswith("."):
            return None
        rel = name[len("wiki_images/") :] if name.startswith("wiki_images/") else name
        return f"wiki_images/{rel}"

    jobs = [
        FileJob(
            "WikihowText_data.json",
            "",
            place("WikihowText_data.json"),
            manual=VGSI_PAGE,
        ),
        FileJob("wiki_images.zip", "", unpack(images), manual=VGSI_PAGE),
    ]
    config = {"text": "wikihow/WikihowText_data.json", "images": "wikihow/wiki_images"}
    return Plan("wikihow", splits, jobs, config)


SPECS: dict[str, SourceSpec] = {
    "vist": SourceSpec("vist", ("test", "val", "train"), ("test",), plan_vist),
    "wikihow": SourceSpec("wikihow", ("all",), ("all",), plan_wikihow),
    "mathvista": SourceSpec("mathvista", ("testmini",), ("testmini",), plan_mathvista),
    "remi": SourceSpec("remi", ("test", "train"), ("test",), plan_remi),
    "coco": SourceSpec("coco", ("val", "train"), ("val",), plan_coco, single_split=True),
}
