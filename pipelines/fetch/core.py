"""Fetch one source: download (or take the hand-downloaded file), verify, lay out, stamp.

For every :class:`~pipelines.fetch.sources.FileJob` of a plan, in order:

1. Skip it when its stamp ``<to>/<source>/.mmloom-fetch/<filename>.done`` holds the sha256
   the checksums expect (the file was verified and laid out before).
2. Get the file: a hand-downloaded one from ``<manual>/<source>/``, a hub file with
   ``huggingface_hub`` (pinned to a commit), or an HTTP download with resume and retries
   into ``<to>/downloads/<source>/``.
3. Verify size and sha256 against ``checksums.tsv``; a mismatch moves the file into
   ``.bad/`` beside it and stops with :class:`ChecksumError`. A file the checksums do not
   know is recorded (``<to>/<source>/checksums.tsv``) and verified on every later fetch.
4. Install it (extract the needed members, or link it into place), then write the stamp.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.fetch import hub as hubmod
from pipelines.fetch.checksums import Checksum, ChecksumBook, sha256_of
from pipelines.fetch.http import RetryPolicy, check_disk, download, human, mirror_url
from pipelines.fetch.sources import FileJob, Plan
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


def manual_path(settings: FetchSettings, source: str, job: FileJob) -> Path:
    return settings.manual_dir / source / job.filename


def missing_manual(plan: Plan, settings: FetchSettings) -> list[str]:
    """Lines naming each hand-downloaded file that is not in place yet (and not fetched)."""
    book = ChecksumBook(plan.source, settings.to / plan.source, settings.checksums_dir)
    lines = []
    for job in plan.jobs:
        if not job.manual or _stamp_ok(settings, plan.source, job, book):
            continue
        if not manual_path(settings, plan.source, job).is_file():
            size = f" ({job.size_note})" if job.size_note else ""
            lines.append(
                f"  {plan.source}: {job.filename}{size} from {job.manual}\n"
                f"      -> put it at {manual_path(settings, plan.source, job)}"
            )
    return lines


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


def fetch_plan(plan: Plan, settings: FetchSettings) -> dict[str, str]:
    """Run every job of ``plan``; returns filename -> what happened (for the summary)."""
    root = settings.to / plan.source
    root.mkdir(parents=True, exist_ok=True)
    book = ChecksumBook(plan.source, root, settings.checksums_dir)
    report: dict[str, str] = {}
    for job in plan.jobs:
        if _stamp_ok(settings, plan.source, job, book):
            LOG.info("%s/%s: already fetched and verified", plan.source, job.filename)
            report[job.filename] = "up to date"
            continue
        local, url = _obtain(plan.source, job, book, settings)
        row = _verify(plan.source, job, local, url, book, settings)
        job.install(local, root)
        stamp = _stamp(settings, plan.source, job)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(row.sha256 + "\n", encoding="utf-8")
        if (
            settings.delete_archives
            and not job.manual
            and local.name.endswith((".zip", ".tar.gz", ".tgz", ".tar"))
        ):
            local.unlink()
        report[job.filename] = f"fetched ({human(row.size)})"
    if settings.register:
        changed = book.register()
        if changed:
            LOG.info("registered %s in %s", ", ".join(changed), book.committed_file)
    return report


def _obtain(source: str, job: FileJob, book: ChecksumBook, settings: FetchSettings):
    """The local path of the file (downloaded if needed) and its canonical URL."""
    if job.manual:
        path = manual_path(settings, source, job)
        if not path.is_file():
            raise MmloomError(
                f"{source}: {job.filename} must be downloaded by hand from {job.manual}; put it "
                f"at {path} and run the same command again"
            )
        return path, book.url(job.filename, job.url) or f"manual:{job.filename}"
    url = book.url(job.filename, job.url)
    size = book.size_hint(job.filename)
    downloads = settings.to / "downloads" / source
    if url.startswith("hf://"):
        hub = hubmod.parse_hf_url(url)
        if not hub.pinned():
            hub, hub_size = hubmod.resolve(hub)
            size = size or hub_size
            LOG.info("%s: %s resolved to commit %s", source, job.filename, hub.revision)
        if size:
            local = downloads / "hub" / hub.path
            have = local.stat().st_size if local.is_file() else 0
            check_disk(downloads, max(size - have, 0), f"{job.filename} ({human(size)})")
        return hubmod.download(hub, downloads / "hub"), hub.url
    local = downloads / job.filename
    if not local.is_file():
        download(
            mirror_url(url, settings.mirror),
            local,
            expected_size=size,
            policy=settings.policy,
            progress=settings.progress,
            label=f"{source}/{job.filename}",
        )
    return local, url


def _verify(
    source: str,
    job: FileJob,
    local: Path,
    url: str,
    book: ChecksumBook,
    settings: FetchSettings,
) -> Checksum:
    size = local.stat().st_size
    sha = sha256_of(local)
    expected = book.expected(job.filename)
    if expected is not None and (
        sha != expected.sha256 or (expected.size is not None and size != expected.size)
    ):
        bad = local.parent / ".bad" / f"{local.name}.{sha[:12]}"
        bad.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, bad)
        again = (
            f"put a good copy at {local}"
            if job.manual
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
    if expected is None:
        LOG.warning(
            "%s: %s has no known checksum; recorded sha256 %s (%d bytes) on this first fetch "
            "in %s; later fetches verify against it",
            source,
            job.filename,
            sha,
            size,
            book.recorded_file,
        )
    if book.recorded.get(job.filename) != row:
        book.record(row)
    return row
