"""Fetch one source: download (or take the hand-downloaded file), verify, lay out, stamp.

For every :class:`~sources.spec.FileJob` of a plan, in order:

1. Skip it when its stamp ``<to>/<source>/.mmloom-fetch/<filename>.done`` holds the sha256
   the checksums expect (the file was verified and laid out before).
2. Get the file: one put by hand at ``<manual>/<source>/<filename>`` (``<manual>`` is
   ``<to>/manual`` unless ``--manual-dir``; the one place for hand-downloaded files, those
   that cannot be scripted and those whose download failed), else a hub file with
   ``huggingface_hub`` (pinned to a commit), or an HTTP download with resume and retries
   into ``<to>/downloads/<source>/``. A file that must be fetched by hand and is not in
   place yet is skipped (:func:`missing_manual` lists them): the rest is fetched.
   Never more bytes are written than the file's known size, or the cap for an unknown one
   (:mod:`pipelines.fetch.limits`).
3. Verify size and sha256 against ``checksums.tsv``; a mismatch moves the file into
   ``.bad/`` beside it and stops with :class:`ChecksumError`.
4. Install it (extract the needed members, or link it into place). An archive is unpacked
   all or nothing, within the caps (:mod:`pipelines.fetch.extract`).
5. Only then is a file the checksums did not know **trusted**: its url, size and sha256 are
   recorded (``<to>/<source>/checksums.tsv``) and verified on every later fetch. A file that
   cannot be installed (unsafe, unreadable, not the published file) is never recorded; a
   download of it is moved to ``.bad/`` so that the next fetch downloads afresh and a genuine
   file is never measured against it. Then the stamp is written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.fetch import hub as hubmod
from pipelines.fetch.checksums import Checksum, ChecksumBook
from pipelines.fetch.extract import ArchiveTooLargeError, RefusedFileError
from pipelines.fetch.http import RetryPolicy, SizeBound, download, mirror_url
from pipelines.fetch.limits import FetchLimits, check_disk, human
from pipelines.fetch.sources import FileJob, Plan, install
from schemas.errors import MmloomError

LOG = logging.getLogger("mmloom.fetch")
STAMPS = ".mmloom-fetch"


class ChecksumError(MmloomError):
    """A file's size or sha256 is not what its checksums file says."""


@dataclass(frozen=True)
class FetchSettings:
    to: Path
    manual_dir: Path
    checksums_dir: Path | None = None
    mirror: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    progress: bool = True
    delete_archives: bool = False
    register: bool = False
    limits: FetchLimits = field(default_factory=FetchLimits)


def manual_path(settings: FetchSettings, source: str, job: FileJob) -> Path:
    """Where a person puts ``job``'s file by hand: ``<manual>/<source>/<filename>``."""
    return settings.manual_dir / source / job.filename


@dataclass(frozen=True)
class HandFile:
    """A file to be downloaded by hand that is not in place yet."""

    source: str
    job: FileJob
    path: Path  # where to put it

    def lines(self) -> str:
        size = f" ({self.job.size_note})" if self.job.size_note else ""
        return (
            f"  {self.source}: {self.job.filename}{size} from {self.job.manual}\n"
            f"      -> put it at {self.path}"
        )


def is_done(plan: Plan, job: FileJob, settings: FetchSettings, book: ChecksumBook) -> bool:
    """Whether ``job``'s file was verified and laid out before (its stamp is good)."""
    return _stamp_ok(settings, plan.source, job, book)


def book_of(plan: Plan, settings: FetchSettings) -> ChecksumBook:
    return ChecksumBook(plan.source, settings.to / plan.source, settings.checksums_dir)


def missing_manual(plan: Plan, settings: FetchSettings) -> list[HandFile]:
    """Each file of ``plan`` to be downloaded by hand that is neither in place nor fetched."""
    book = book_of(plan, settings)
    return [
        HandFile(plan.source, job, manual_path(settings, plan.source, job))
        for job in plan.jobs
        if job.manual
        and not _stamp_ok(settings, plan.source, job, book)
        and not manual_path(settings, plan.source, job).is_file()
    ]


def _stamp(settings: FetchSettings, source: str, job: FileJob) -> Path:
    return settings.to / source / STAMPS / f"{job.filename}.done"


def _stamp_ok(settings: FetchSettings, source: str, job: FileJob, book: ChecksumBook) -> bool:
    stamp = _stamp(settings, source, job)
    expected = book.expected(job.filename)
    return (
        stamp.is_file()
        and expected is not None
        and stamp.read_text(encoding="utf-8").strip() == expected.sha256
    )


MISSING = "missing: to be downloaded by hand"


def fetch_plan(plan: Plan, settings: FetchSettings) -> dict[str, str]:
    """Run every job of ``plan`` whose file can be had (a file to be downloaded by hand that
    is not in place yet is skipped: :data:`MISSING`); returns filename -> what happened.

    Jobs run in order, so a job's install may depend on the files of earlier jobs that are
    fetched by script (as MathVista's images.zip reads the testmini.json laid out before it).
    """
    root = settings.to / plan.source
    root.mkdir(parents=True, exist_ok=True)
    book = ChecksumBook(plan.source, root, settings.checksums_dir)
    report: dict[str, str] = {}
    for job in plan.jobs:
        if _stamp_ok(settings, plan.source, job, book):
            LOG.info("%s/%s: already fetched and verified", plan.source, job.filename)
            report[job.filename] = "up to date"
            continue
        if job.manual and not manual_path(settings, plan.source, job).is_file():
            report[job.filename] = MISSING
            continue
        stamp = _stamp(settings, plan.source, job)
        stamp.unlink(missing_ok=True)  # a stale stamp: this file is laid out again
        local, url, by_hand = _obtain(plan.source, job, book, settings)
        row, trusted = _verify(plan.source, job, local, url, book, by_hand)
        try:
            install(job, local, root, settings.limits)
        except RefusedFileError as exc:
            raise _refused(plan.source, job, local, row, trusted, book, exc, by_hand) from None
        if not trusted:
            LOG.warning(
                "%s: %s has no known checksum; recorded sha256 %s (%d bytes) on this first "
                "fetch in %s, now that it was laid out; later fetches verify against it",
                plan.source,
                job.filename,
                row.sha256,
                row.size,
                book.recorded_file,
            )
        if book.recorded.get(job.filename) != row:
            book.record(row)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(row.sha256 + "\n", encoding="utf-8")
        if (
            settings.delete_archives
            and not by_hand
            and local.name.endswith((".zip", ".tar.gz", ".tgz", ".tar"))
        ):
            local.unlink()
        report[job.filename] = f"fetched ({human(row.size)})"
    if settings.register:
        changed = book.register()
        if changed:
            LOG.info("registered %s in %s", ", ".join(changed), book.committed_file)
    return report


def _refused(
    source: str,
    job: FileJob,
    local: Path,
    row: Checksum,
    trusted: bool,
    book: ChecksumBook,
    exc: RefusedFileError,
    by_hand: bool,
) -> MmloomError:
    """The error for a file that could not be laid out; an untrusted download of it that
    is not merely over a cap is moved aside, so that the next fetch starts afresh."""
    if trusted and isinstance(exc, ArchiveTooLargeError):
        return MmloomError(f"{source}: {exc}")
    if trusted:
        return MmloomError(
            f"{source}: {exc} (the file matches the sha256 in {book.where(job.filename)}: if "
            "that row was recorded from a bad download, delete the row and the file, then "
            "fetch again)"
        )
    if isinstance(exc, ArchiveTooLargeError):
        # kept where it is: a larger cap may take it
        return MmloomError(f"{source}: {exc}. Its checksum was not recorded")
    if by_hand:  # the person who put it there replaces it
        return MmloomError(
            f"{source}: {exc}. Its checksum was not recorded; put a good copy of "
            f"{job.filename} from {job.manual or job.url} at {local}"
        )
    bad = _set_aside(local, row.sha256)
    return MmloomError(
        f"{source}: {exc}. Its checksum was not recorded, and the download was moved aside to "
        f"{bad}; the next fetch downloads it afresh"
    )


def _set_aside(local: Path, sha: str) -> Path:
    bad = local.parent / ".bad" / f"{local.name}.{sha[:12]}"
    bad.parent.mkdir(parents=True, exist_ok=True)
    os.replace(local, bad)
    return bad


def _obtain(
    source: str, job: FileJob, book: ChecksumBook, settings: FetchSettings
) -> tuple[Path, str, bool]:
    """The local path of the file (downloaded if needed), its canonical URL, and whether it
    was put in place by hand (at :func:`manual_path`, which wins over a download)."""
    path = manual_path(settings, source, job)
    if path.is_file():
        if not job.manual:
            LOG.info("%s: using %s, put there by hand", source, path)
        return path, book.url(job.filename, job.url) or f"manual:{job.filename}", True
    if job.manual:
        raise MmloomError(
            f"{source}: {job.filename} must be downloaded by hand from {job.manual}; put it "
            f"at {path} and run the same command again"
        )
    url = book.url(job.filename, job.url)
    size = book.size_hint(job.filename)
    size_from = str(book.where_size(job.filename))
    downloads = settings.to / "downloads" / source
    label = f"{source}/{job.filename}"
    if url.startswith("hf://"):
        hub = hubmod.parse_hf_url(url)
        if not hub.pinned():
            hub, hub_size = hubmod.resolve(hub)
            if size is None and hub_size is not None:
                size, size_from = hub_size, "the hub's metadata"
            LOG.info("%s: %s resolved to commit %s", source, job.filename, hub.revision)
        if size:
            local = downloads / "hub" / hub.path
            have = local.stat().st_size if local.is_file() else 0
            check_disk(downloads, max(size - have, 0), f"{job.filename} ({human(size)})")
        bound = SizeBound.of(size, size_from, settings.limits)
        return hubmod.download(hub, downloads / "hub", bound, label), hub.url, False
    local = downloads / job.filename
    if not local.is_file():
        download(
            mirror_url(url, settings.mirror),
            local,
            bound=SizeBound.of(size, size_from, settings.limits),
            policy=settings.policy,
            progress=settings.progress,
            label=label,
            by_hand=path,
        )
    return local, url, False


def _verify(
    source: str,
    job: FileJob,
    local: Path,
    url: str,
    book: ChecksumBook,
    by_hand: bool,
) -> tuple[Checksum, bool]:
    """The file's row, and whether a known checksum vouches for it (False: not known yet;
    it is recorded only once the file is laid out)."""
    # imported here: schemas.fs loads Beam's filesystems, which `mmloom fetch` (its --help
    # above all) must not pay for before it hashes anything
    from schemas.fs import sha256_size

    size = local.stat().st_size
    sha = sha256_size(str(local))[0]
    expected = book.expected(job.filename)
    if expected is not None and (
        sha != expected.sha256 or (expected.size is not None and size != expected.size)
    ):
        bad = _set_aside(local, sha)
        again = (
            f"put a good copy at {local}"
            if by_hand
            else "run the same command again to download it afresh"
        )
        raise ChecksumError(
            f"{source}: checksum mismatch for {job.filename}: expected {human(expected.size)}"
            f" sha256 {expected.sha256}, got {size} bytes sha256 {sha} (checked against "
            f"{book.where(job.filename)}). The file was moved aside to {bad}. {again.capitalize()}"
            "; if it fails again, the publisher changed the file: check it, then update that "
            "checksums row (delete it to record the new file on the next fetch)"
        )
    row = Checksum(url=url, size=size, sha256=sha, filename=job.filename)
    return row, expected is not None
