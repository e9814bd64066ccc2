"""Plain HTTP(S) downloads: resume with ``Range``, bounded retries with backoff, a progress
bar per file, and a disk-space check before the bytes arrive.

Only the standard library is used (``urllib``). The partial file ``<dest>.part`` survives an
interruption (a killed process, a dropped connection); the next attempt, in this run or a
later one, asks for ``Range: bytes=<size of .part>-`` and appends. A server that ignores the
range (200 instead of 206) is answered by starting over.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from schemas.errors import MmloomError

LOG = logging.getLogger("mmloom.fetch")
CHUNK = 1 << 20
# room kept free beyond the file itself (metadata, the extraction's first files)
DISK_MARGIN = 64 << 20
USER_AGENT = "mmloom-fetch (+https://github.com/; python urllib)"


class DownloadError(MmloomError):
    """A download that failed for good (after the retries, or a status that will not change)."""


class DiskSpaceError(MmloomError):
    """Not enough free space for a download or an extraction."""


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` further attempts after the first; sleep ``backoff * 2**n`` between them.

    An attempt that received bytes resets the count, so a long download over a flaky link
    finishes, while a server that never delivers fails after ``retries + 1`` attempts.
    """

    retries: int = 5
    backoff: float = 2.0
    timeout: float = 60.0


def mirror_url(url: str, mirror: str | None) -> str:
    """``https://host/path?q`` -> ``<mirror>/host/path?q`` (a local copy of every host)."""
    if not mirror or not url.startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{mirror.rstrip('/')}/{parts.netloc}{rest}"


def human(n: int | None) -> str:
    if n is None:
        return "unknown size"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def check_disk(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` when ``folder``'s filesystem has less than ``needed``
    bytes (plus a margin) free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + DISK_MARGIN > free:
        raise DiskSpaceError(
            f"not enough disk space for {what}: it needs {human(needed)} (+{human(DISK_MARGIN)} "
            f"margin) in {folder}, but only {human(free)} is free. Free some space, or pass "
            "--to a folder on a larger disk, and run the same command again"
        )


def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        mininterval=0.5,
        leave=True,
    )


class _Retryable(Exception):
    """An attempt failed in a way the next attempt may not (dropped connection, 5xx)."""


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    policy: RetryPolicy | None = None,
    progress: bool = True,
    label: str = "",
) -> Path:
    """Download ``url`` to ``dest`` (atomically renamed from ``dest.part`` when complete).

    Args:
        url: the URL actually requested (already mirrored).
        dest: final path; its folder is created.
        expected_size: bytes, from the checksums file; checked against free space first.
        policy: retries, backoff and timeout.
        progress: draw a progress bar on stderr.
        label: what to call the file in messages (defaults to its name).

    Raises:
        DownloadError: after the retries, or at once on a 4xx other than 416.
        DiskSpaceError: before downloading, when the rest of the file would not fit.
    """
    policy = policy or RetryPolicy()
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if expected_size is not None:
        have = part.stat().st_size if part.exists() else 0
        check_disk(dest.parent, max(expected_size - have, 0), f"{label} ({human(expected_size)})")
    failures = 0
    last_error: BaseException | None = None
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        if expected_size is not None and offset == expected_size and offset > 0:
            break  # a previous run got every byte but was stopped before the rename
        try:
            got = _attempt(url, part, offset, expected_size, policy.timeout, progress, label)
            if got:
                break
        except _Retryable as exc:
            last_error = exc.__cause__ or exc
            received = (part.stat().st_size if part.exists() else 0) - offset
            failures = 0 if received > 0 else failures + 1
            if failures > policy.retries:
                have = part.stat().st_size if part.exists() else 0
                kept = f" The {human(have)} received so far are kept in {part}." if have else ""
                raise DownloadError(
                    f"could not download {label} from {url}: {failures} attempts in a row "
                    f"failed (last error: {last_error}).{kept} Check your connection or the "
                    "host's status and run the same command again: it resumes where it stopped. "
                    f"Or download the file by hand and put it at {dest}"
                ) from None
            delay = policy.backoff * (2 ** max(failures - 1, 0))
            LOG.warning(
                "%s: attempt failed (%s); retrying in %.2fs (%d/%d)",
                label,
                last_error,
                delay,
                failures,
                policy.retries,
            )
            time.sleep(delay)
    os.replace(part, dest)
    return dest


def _attempt(
    url: str,
    part: Path,
    offset: int,
    expected_size: int | None,
    timeout: float,
    progress: bool,
    label: str,
) -> bool:
    """One request; True when ``part`` holds the whole file."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # the range starts at or past the end: the .part is complete, or not this file
            if expected_size is None or offset == expected_size:
                return True
            part.unlink()
            raise _Retryable(f"HTTP 416 for a range at {offset}") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code}") from exc
        raise DownloadError(
            f"{label}: {url} answered HTTP {exc.code} {exc.reason}. The file may have moved; "
            "check the source's page (see its README under sources/) and update the URL in "
            "its checksums.tsv, or download the file by hand"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(str(exc)) from exc
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            start = _range_start(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Retryable(f"server resumed at {start}, not at {offset}")
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # fresh download, or the server ignored the range
        total = offset + length if length is not None else expected_size
        if expected_size is None and length is not None:
            check_disk(part.parent, length, f"{label} ({human(total)})")
        written = 0
        bar = _progress(total, offset, label, progress)
        try:
            with part.open(mode, buffering=0) as f:
                while True:
                    try:
                        block = resp.read1(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retryable(f"connection lost after {offset + written} bytes") from exc
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if length is not None and written < length:
            raise _Retryable(
                f"connection closed after {offset + written} of {offset + length} bytes"
            )
    return True


def _range_start(content_range: str | None) -> int | None:
    # "bytes 100-999/1000"
    if not content_range or not content_range.startswith("bytes "):
        return None
    try:
        return int(content_range[6:].split("-", 1)[0])
    except ValueError:
        return None
