"""Checking a build or a release against its manifest (``mmloom verify``).

A build is checked against ``_BUILD.json`` (:func:`schemas.buildio.write_manifest`), a release
against ``manifest.json`` (``pipelines.publish.release``). Two depths:

* **quick** (what ``mmloom show``, ``publish`` and ``annotate push`` run before reading):
  the file list (every listed file is there, nothing unlisted beside it), sizes, and row
  counts from Parquet footers. No file is hashed, except a build's small ``stats.json``.
* **full** (``mmloom verify``'s default): also the sha256 of every listed file, the lines of
  every JSON Lines file and the items of ``mmie/data.json``; for a build, the bytes of every
  image the records use must hash to their content address (``images/<sha256>.<ext>``).

The image store is not in the build manifest (it may hold images whose records a later
stage dropped). :func:`verify_build` checks it from the records instead: every image a
record uses is in the store (quick and full), hashes to its name (full), and the number of
distinct images matches the manifest's ``images_referenced``; a file in ``images/`` that is
neither an image of the store nor an interrupted write's ``*.partial`` is reported.

What no check here can catch: a change made together with a matching change to the manifest
(the manifest is not signed). The summary prints the manifest's own sha256, to compare with
the one published beside a release.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from schemas.buildio import (
    MANIFEST_FILE,
    RECORDS_DIR,
    RELEASE_MANIFEST,
    DamagedFileError,
    check_build,
    compare_file,
    count_lines,
    entries_present,
    format_problems,
    is_release,
    iter_parquet_rows,
    list_folder,
    parquet_rows,
    safe_relpath,
)
from schemas.errors import MmloomError
from schemas.filesystems import FileSystems
from schemas.fs import sha256_size
from schemas.store import IMAGES_DIR, PARTIAL_SUFFIX, ImageStore, is_ref

# problems shown by `mmloom verify`, and by the quick checks of show and publish
VERIFY_LIMIT = 20
QUICK_LIMIT = 5


class ReleaseMismatchError(MmloomError):
    """A release whose files differ from its ``manifest.json``."""


@dataclass
class Verification:
    """What :func:`verify` found: the problems (none: it verifies) and what was checked
    (``files``: those the manifest lists, the manifest itself not counted)."""

    path: str
    kind: str  # "build" or "release"
    full: bool
    problems: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    images: int = 0
    manifest_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """The one-line report of a folder that verifies."""
        manifest = MANIFEST_FILE if self.kind == "build" else RELEASE_MANIFEST
        depth = (
            "sizes, row counts and sha256 of every file"
            if self.full
            else "file list, sizes and row counts (--quick: nothing hashed)"
        )
        images = ""
        if self.kind == "build":
            images = f", {self.images} images referenced" + (" (bytes hashed)" if self.full else "")
        return (
            f"OK: the {self.kind} {self.path} matches its {manifest}: {self.files} files, "
            f"{self.rows} records{images}; checked {depth}. {manifest} sha256 "
            f"{self.manifest_sha256}"
        )

    def message(self, limit: int = VERIFY_LIMIT) -> str:
        """The one error message of a folder that does not verify: every problem on its own
        line (the first ``limit``), then what to do."""
        manifest = MANIFEST_FILE if self.kind == "build" else RELEASE_MANIFEST
        n = len(self.problems)
        fix = (
            f"Rebuild it with `mmloom build --config CONFIG --output {self.path} --overwrite`."
            if self.kind == "build"
            else f"Republish it with `mmloom publish --build BUILD --output {self.path} "
            "--version X.Y.Z --force`, or fetch the release again."
        )
        return (
            f"{self.path} does not match its {manifest} ({n} problem{'s' if n != 1 else ''}):\n  "
            + format_problems(self.problems, limit, sep="\n  ")
            + f"\n{fix}"
        )


# ------------------------------------------------------------------------------ builds


def _image_refs(build_dir: str, rel: str) -> list[tuple[str, Any]]:
    """``(record id, image path)`` for every image of every record in the shard ``rel``."""
    path = FileSystems.join(build_dir, *rel.split("/"))
    return [
        (row["id"], image.get("path"))
        for row in iter_parquet_rows(path, ["id", "images"])
        for image in row["images"] or []
    ]


def check_images(build_dir: str, manifest: dict[str, Any], full: bool, skip: set[str]) -> tuple[
    int, list[str]
]:  # fmt: skip
    """The images the records use against the store: ``(distinct images, problems)``.

    Args:
        skip: record shards already found damaged (they are not read).
    """
    shards = [e["path"] for e in manifest["records"]["files"] if e["path"] not in skip]
    users: dict[str, list[str]] = {}
    problems: list[str] = []
    unread = False
    for rel in shards:
        try:
            refs = _image_refs(build_dir, rel)
        except DamagedFileError as exc:
            problems.append(f"{rel}: unreadable ({str(exc.__cause__).strip()[:200]})")
            unread = True
            continue
        for record_id, ref in refs:
            if not is_ref(ref):
                problems.append(f"{rel}: record {record_id} uses the image {ref!r}, which is "
                                "not a store reference (images/<sha256>.<ext>)")  # fmt: skip
                continue
            users.setdefault(ref, []).append(record_id)
    names = list_folder(FileSystems.join(build_dir, IMAGES_DIR))
    stored = {f"{IMAGES_DIR}/{n}" for n in names}
    for name in names:
        if not is_ref(f"{IMAGES_DIR}/{name}") and not (
            name.startswith(".") and name.endswith(PARTIAL_SUFFIX)
        ):
            problems.append(f"{IMAGES_DIR}/{name}: not an image of the store")
    store = ImageStore(build_dir)
    for ref in sorted(users):
        ids = users[ref]
        used_by = ids[0] + (f" and {len(ids) - 1} more records" if len(ids) > 1 else "")
        if ref not in stored:
            problems.append(f"{ref}: missing from the image store (used by {used_by})")
        elif full and sha256_size(store.uri(ref))[0] != posixpath.basename(ref).split(".")[0]:
            problems.append(f"{ref}: its bytes do not hash to its name (used by {used_by})")
    expected = manifest.get("images_referenced")
    if not skip and not unread and expected is not None and expected != len(users):
        problems.append(f"{MANIFEST_FILE}: lists {expected} images referenced, the records "
                        f"use {len(users)}")  # fmt: skip
    return len(users), problems


def verify_build(build_dir: str, full: bool = True) -> Verification:
    """Check a build against its ``_BUILD.json`` and its image store (see the module doc)."""
    result = Verification(build_dir, "build", full)
    manifest, result.problems = check_build(build_dir, verify_checksums=full)
    if manifest is None:
        return result
    damaged = {p.split(":", 1)[0] for p in result.problems if p.startswith(f"{RECORDS_DIR}/")}
    images, problems = check_images(build_dir, manifest, full, damaged)
    result.problems += problems
    result.images = images
    result.rows = manifest["records"].get("rows", 0)
    result.files = len(manifest["records"]["files"]) + len(manifest["dead_letters"]["files"]) + 1
    result.manifest_sha256 = sha256_size(FileSystems.join(build_dir, MANIFEST_FILE))[0]
    return result


# ------------------------------------------------------------------------------ releases


def _walk(root: str) -> list[str]:
    """Every file under ``root``, as ``/``-separated paths relative to it (hidden files and
    links too; a link to a folder is one entry, not followed)."""
    if "://" in root:
        prefix = root.rstrip("/") + "/"
        try:
            matched = FileSystems.match([prefix + "**"])[0].metadata_list
        except Exception:  # a missing prefix matches nothing
            return []
        return sorted(m.path[len(prefix) :] for m in matched)
    out = []
    for folder, dirs, names in os.walk(root):
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        out += [name if rel == "." else f"{rel}/{name}" for name in names + links]
    return sorted(out)


def _json_items(path: str) -> int:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = json.loads(f.read().decode("utf-8"))
    if not isinstance(data, list):
        raise ValueError("not a JSON list")
    return len(data)


def _row_counter(rel: str, full: bool):
    """How to count the rows of a release file: Parquet footers always, JSON Lines and the
    MMIE export only in a full check (they have to be read whole)."""
    if rel.endswith(".parquet"):
        return parquet_rows
    if full and rel.endswith(".jsonl"):
        return count_lines
    if full and rel.endswith(".json") and rel.startswith("mmie/"):
        return _json_items
    return None


def read_release_manifest_checked(release_dir: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A release's ``manifest.json`` with its ``files`` table, or None and why not."""
    path = FileSystems.join(release_dir, RELEASE_MANIFEST)
    if not FileSystems.exists(path):
        return None, [f"{RELEASE_MANIFEST}: missing (not a release written by `mmloom publish`)"]
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except ValueError as exc:
        return None, [f"{RELEASE_MANIFEST}: not valid JSON ({exc})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        return None, [f"{RELEASE_MANIFEST}: has no table of files (not written by mmloom publish)"]
    unsafe = [rel for rel in files if not safe_relpath(rel)]
    if unsafe:
        return None, [f"{RELEASE_MANIFEST}: lists a path outside the release ({unsafe[0]!r})"]
    return manifest, []


def check_release(release_dir: str, full: bool = False) -> tuple[dict[str, Any] | None, list[str]]:
    """Compare a release folder with its ``manifest.json``: ``(manifest, problems)``.

    Quick by default (file list, sizes, Parquet footer rows); ``full`` adds the sha256 of
    every file, JSON Lines line counts and the MMIE export's item count. Each problem starts
    with the path it is about.
    """
    manifest, problems = read_release_manifest_checked(release_dir)
    if manifest is None:
        return None, problems
    files: dict[str, dict[str, Any]] = manifest["files"]
    for rel in _walk(release_dir):
        if rel != RELEASE_MANIFEST and rel not in files:
            problems.append(f"{rel}: not in the manifest")
    data_rows = 0
    for rel, entry in sorted(files.items()):
        path = FileSystems.join(release_dir, *rel.split("/"))
        problem = compare_file(rel, path, entry, _row_counter(rel, full), full)
        if problem:
            problems.append(problem)
        if rel.startswith("data/") and rel.endswith(".parquet"):
            data_rows += entry.get("rows") or 0
    published = (manifest.get("publish") or {}).get("records")
    if published is not None and published != data_rows:
        problems.append(f"{RELEASE_MANIFEST}: says {published} records were published, its data "
                        f"shards list {data_rows} rows")  # fmt: skip
    return manifest, problems


def verify_release(release_dir: str, full: bool = True) -> Verification:
    """Check a release against its ``manifest.json`` (see the module doc)."""
    manifest, problems = check_release(release_dir, full)
    result = Verification(release_dir, "release", full, problems)
    if manifest is not None:
        result.files = len(manifest["files"])
        result.rows = (manifest.get("publish") or {}).get("records") or 0
        path = FileSystems.join(release_dir, RELEASE_MANIFEST)
        result.manifest_sha256 = sha256_size(path)[0]
    return result


def require_release(release_dir: str) -> dict[str, Any]:
    """The manifest of a release whose files pass the quick check; otherwise one error that
    names the first problems and says what to do.

    Raises:
        ReleaseMismatchError: files missing, unlisted, or of another size or row count.
    """
    manifest, problems = check_release(release_dir, full=False)
    if problems:
        raise ReleaseMismatchError(
            f"{release_dir} does not match its {RELEASE_MANIFEST}: "
            f"{format_problems(problems, QUICK_LIMIT)}. Nothing was read from it; run "
            f"`mmloom verify {release_dir}` for every problem, and republish it (`mmloom "
            "publish ... --force`) or fetch the release again"
        )
    assert manifest is not None
    return manifest


# ------------------------------------------------------------------------------ either


def verify(path: str, full: bool = True) -> Verification:
    """Check a build or a release, whichever ``path`` is.

    Raises:
        MmloomError: ``path`` does not exist, or is neither a build nor a release.
    """
    if "://" not in path and not FileSystems.exists(path):
        raise MmloomError(f"{path} does not exist; give the folder of a build or a release")
    if is_release(path):
        return verify_release(path, full)
    if not entries_present(path):
        raise MmloomError(
            f"{path} is neither a build (no {MANIFEST_FILE}) nor a release (no "
            f"{RELEASE_MANIFEST}); give the --output folder of `mmloom build` or `mmloom publish`"
        )
    return verify_build(path, full)
