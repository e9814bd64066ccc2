"""Plain HTTP(S) downloads: resume with ``Range``, bounded retries with backoff, a progress
bar per file, a disk-space check before the bytes arrive, and a cap on what is written.

Only the standard library is used (``urllib``). The partial file ``<dest>.part`` survives an
interruption (a killed process, a dropped connection); the next attempt, in this run or a
later one, asks for ``Range: bytes=<size of .part>-`` and appends. A server that ignores the
range (200 instead of 206) is answered by starting over.

No download writes more than it may: a file of known size (its checksums row, or the hub's
metadata) is cut when the server sends one byte more than that size, a file of unknown size
at :attr:`~pipelines.fetch.limits.FetchLimits.max_download`; either way the partial file is
deleted and the download refused (:class:`DownloadTooLargeError`), without retrying.

Only failures that the next attempt may not meet are retried (with backoff): timeouts, a
dropped or reset connection, HTTP 5xx, 408 and 429. Those that will not change fail at once,
with one message naming the URL and what to do: a host name that does not resolve (DNS), a
host that refuses the connection, and every other HTTP 4xx (401, 403, 404, 410, ...).
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from pipelines.fetch.limits import (
    DiskWatch,
    FetchLimits,
    check_disk,
    human,
    write_failed,
)
from schemas.errors import MmloomError

LOG = logging.getLogger("mmloom.fetch")
CHUNK = 1 << 20
USER_AGENT = "mmloom-fetch (+https://github.com/; python urllib)"


class DownloadError(MmloomError):
    """A download that failed for good (after the retries, or a status that will not change)."""


class DownloadFailedFastError(DownloadError):
    """A failure that retrying will not cure (DNS, connection refused, HTTP 4xx): not retried."""


class DownloadTooLargeError(DownloadError):
    """The server sent more than the file's known size, or than the cap for unknown sizes."""


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` further attempts after the first; sleep ``backoff * 2**n`` between them.

    An attempt that received bytes resets the count, so a long download over a flaky link
    finishes, while a server that never delivers fails after ``retries + 1`` attempts.
    """

    retries: int = 5
    backoff: float = 2.0
    timeout: float = 60.0


@dataclass(frozen=True)
class SizeBound:
    """The most bytes a download may have, and where that number comes from.

    ``known``: the file's size from its checksums row or the hub (one byte more is refused);
    otherwise ``limit`` is the cap for files of unknown size.
    """

    limit: int
    known: bool
    source: str = ""  # "sources/coco/checksums.tsv", "the hub's metadata"

    @classmethod
    def of(cls, size: int | None, source: str, limits: FetchLimits) -> SizeBound:
        if size is not None:
            return cls(size, True, source)
        return cls(limits.max_download, False)

    def refusal(self, label: str, url: str) -> DownloadTooLargeError:
        if self.known:
            return DownloadTooLargeError(
                f"{label}: {url} sent more than the {self.limit} bytes that {self.source} "
                "gives for it; the download was stopped at that size and deleted. The file "
                "at that URL is not the one the row describes: check the URL and, if the "
                "publisher changed the file, update the row (or delete it: the file is then "
                "recorded afresh on the next fetch); then run the same command again"
            )
        return DownloadTooLargeError(
            f"{label}: {url} sent more than {human(self.limit)}, the cap for a file whose size "
            "no checksums row gives; the download was stopped there and deleted. Check the "
            "URL; if the file really is that large, raise the cap with --max-download SIZE "
            "(or MMLOOM_FETCH_MAX_DOWNLOAD) and run the same command again"
        )


def mirror_url(url: str, mirror: str | None) -> str:
    """``https://host/path?q`` -> ``<mirror>/host/path?q`` (a local copy of every host)."""
    if not mirror or not url.startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{mirror.rstrip('/')}/{parts.netloc}{rest}"


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
    bound: SizeBound,
    policy: RetryPolicy | None = None,
    progress: bool = True,
    label: str = "",
    by_hand: Path | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (atomically renamed from ``dest.part`` when complete).

    Args:
        url: the URL actually requested (already mirrored).
        dest: final path; its folder is created.
        bound: the file's known size (checked against free space first) or the cap for a
            file of unknown size; never more bytes than that are written.
        policy: retries, backoff and timeout.
        progress: draw a progress bar on stderr.
        label: what to call the file in messages (defaults to its name).
        by_hand: where a person may put the file instead (named in the messages).

    Raises:
        DownloadError: after the retries on transient failures (timeouts, dropped
            connections, 5xx, 408, 429).
        DownloadFailedFastError: at once, without retrying: DNS failure, connection refused,
            a 4xx other than 408, 416 and 429.
        DownloadTooLargeError: the server sent more than ``bound`` (the partial is deleted).
        DiskSpaceError: before downloading, when the rest of the file would not fit, or while
            downloading a file of unknown size, when the disk gets full (the partial is kept).
    """
    policy = policy or RetryPolicy()
    label = label or dest.name
    hand = by_hand or dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if bound.known:
        have = part.stat().st_size if part.exists() else 0
        check_disk(dest.parent, max(bound.limit - have, 0), f"{label} ({human(bound.limit)})")
    else:
        check_disk(dest.parent, 0, label)
    failures = 0
    last_error: BaseException | None = None
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if offset > bound.limit:  # left by an earlier run with another row or cap
            part.unlink()
            offset = 0
        if bound.known and offset == bound.limit and offset > 0:
            break  # a previous run got every byte but was stopped before the rename
        try:
            got = _attempt(url, part, offset, bound, policy.timeout, progress, label, hand)
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
                    f"Or download the file by hand and put it at {hand}"
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
    bound: SizeBound,
    timeout: float,
    progress: bool,
    label: str,
    hand: Path,
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
            if not bound.known or offset == bound.limit:
                return True
            part.unlink()
            raise _Retryable(f"HTTP 416 for a range at {offset}") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code}") from exc
        raise _http_refusal(exc.code, str(exc.reason), url, label, hand) from None
    except urllib.error.URLError as exc:
        fast = _fails_fast(exc.reason, url, label, hand)
        if fast is not None:
            raise fast from None
        raise _Retryable(str(exc)) from exc
    except (OSError, http.client.HTTPException) as exc:
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
        if length is not None and offset + length > bound.limit:
            part.unlink(missing_ok=True)
            raise bound.refusal(label, url)  # announced too large: nothing is written
        total = offset + length if length is not None else (bound.limit if bound.known else None)
        if not bound.known and length is not None:
            check_disk(part.parent, length, f"{label} ({human(total)})")
        _receive(resp, part, mode, offset, total, bound, progress, label, url)
        written = part.stat().st_size - offset
        if length is not None and written < length:
            raise _Retryable(
                f"connection closed after {offset + written} of {offset + length} bytes"
            )
    return True


def _http_refusal(code: int, reason: str, url: str, label: str, hand: Path) -> DownloadError:
    """One message for an HTTP status that another attempt will not change."""
    if code in (401, 403):
        why = (
            "the host refuses to serve it (it may need a login or a browser, or block "
            "scripts). Download it by hand (in a browser) and put it at "
            f"{hand}, then run the same command again"
        )
    elif code in (404, 410):
        why = (
            "the file is not (or no longer) there. Check the source's page (see its README "
            "under sources/) and update the URL in its checksums.tsv (or check --mirror), or "
            f"download the file by hand and put it at {hand}; then run the same command again"
        )
    else:
        why = (
            "another attempt will not change that. Check the URL (and --mirror), or download "
            f"the file by hand and put it at {hand}; then run the same command again"
        )
    return DownloadFailedFastError(
        f"{label}: {url} answered HTTP {code} {reason}; not retried: {why}"
    )


def _fails_fast(reason: object, url: str, label: str, hand: Path) -> DownloadError | None:
    """The message for a connection failure that retrying will not cure, or None."""
    host = urlsplit(url).hostname or url
    if isinstance(reason, socket.gaierror):
        return DownloadFailedFastError(
            f"{label}: cannot download {url}: the host name {host} does not resolve (DNS: "
            f"{reason.strerror or reason}); not retried. Check your network connection and "
            "DNS, and the host name (and --mirror or MMLOOM_FETCH_MIRROR if set); then run "
            f"the same command again, or download the file by hand and put it at {hand}"
        )
    if isinstance(reason, ConnectionRefusedError):
        return DownloadFailedFastError(
            f"{label}: cannot download {url}: {host} refused the connection (nothing listens "
            "there); not retried. Check the URL (and --mirror or MMLOOM_FETCH_MIRROR if set) "
            "and the host's status; then run the same command again, or download the file "
            f"by hand and put it at {hand}"
        )
    return None


def _receive(
    resp: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    bound: SizeBound,
    progress: bool,
    label: str,
    url: str,
) -> None:
    """Append the body to ``part``, reading at most one byte beyond ``bound``: that byte
    refuses the download (the partial file is deleted) and is never written."""
    watch = None if bound.known else DiskWatch(part.parent, label)
    have = offset
    bar = _progress(total, offset, label, progress)
    try:
        with part.open(mode, buffering=0) as f:
            while True:
                room = bound.limit - have
                try:
                    block = resp.read1(min(CHUNK, room + 1))
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retryable(f"connection lost after {have} bytes") from exc
                if not block:
                    break
                if len(block) > room:
                    f.close()
                    part.unlink()
                    raise bound.refusal(label, url)
                _write_all(f, block, part, label)
                have += len(block)
                bar.update(len(block))
                if watch is not None:
                    watch.wrote(len(block))
    finally:
        bar.close()


def _write_all(f: BinaryIO, block: bytes, part: Path, label: str) -> None:
    view = memoryview(block)
    try:
        while view:
            n = f.write(view)
            view = view[n:]
    except OSError as exc:
        raise write_failed(part, exc, label) from None


def _range_start(content_range: str | None) -> int | None:
    # "bytes 100-999/1000"
    if not content_range or not content_range.startswith("bytes "):
        return None
    try:
        return int(content_range[6:].split("-", 1)[0])
    except ValueError:
        return None
