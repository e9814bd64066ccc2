"""How much ``mmloom fetch`` may write: the caps on downloads and archives, and disk checks.

* A download whose size a checksums row gives (or the hub's metadata) is cut the moment the
  server sends one byte more, and refused. A download of unknown size is cut at
  :attr:`FetchLimits.max_download` (``--max-download``, default 32 GB).
* One archive may unpack at most :attr:`FetchLimits.max_unpacked` bytes
  (``--max-unpacked``, default 64 GB) and hold at most :attr:`FetchLimits.max_members`
  members (``--max-members``, default 2,000,000). A zip is checked against its member
  headers before anything is written; a tar is counted as it streams, each member's size
  (from its header) before the member is written.
* Free space is checked before a download or a zip of known size, and every 256 MB while
  writing a file or an archive of unknown size: fetch stops while :data:`DISK_MARGIN` is
  still free, instead of filling the disk.

The defaults are above the largest published file a source has (COCO's train2017.zip,
19.3 GB; VIST's test_images.tar.gz, ~35 GB unpacked; wikiHow's 772k images).
"""

from __future__ import annotations

import errno
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import MmloomError

# room kept free beyond the file itself (metadata, the extraction's first files)
DISK_MARGIN = 64 << 20
# how often (in bytes written) free space is checked while writing something of unknown size
DISK_CHECK_EVERY = 256 << 20
DEFAULT_MAX_DOWNLOAD = "32GB"
DEFAULT_MAX_UNPACKED = "64GB"
DEFAULT_MAX_MEMBERS = 2_000_000

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
    "TIB": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class DiskSpaceError(MmloomError):
    """Not enough free space for a download or an extraction."""


def parse_size(text: str | int, what: str) -> int:
    """``"32GB"``, ``"500MB"``, ``"1.5GiB"`` or a number of bytes; ``what`` names the option."""
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE.match(str(text))
        unit = _UNITS.get(m.group(2).upper()) if m else None
        if m is None or unit is None:
            raise MmloomError(
                f"{what} {text!r} is not a size; write a number of bytes or one with a unit "
                "(KB, MB, GB, TB, or KiB, MiB, GiB, TiB), e.g. 32GB"
            )
        value = int(float(m.group(1)) * unit)
    if value <= 0:
        raise MmloomError(f"{what} must be more than 0 bytes, got {text!r}")
    return value


def human(n: int | None) -> str:
    if n is None:
        return "unknown size"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


@dataclass(frozen=True)
class FetchLimits:
    """The caps of one fetch, in bytes (members: a count)."""

    max_download: int = parse_size(DEFAULT_MAX_DOWNLOAD, "--max-download")
    max_unpacked: int = parse_size(DEFAULT_MAX_UNPACKED, "--max-unpacked")
    max_members: int = DEFAULT_MAX_MEMBERS


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


class DiskWatch:
    """Checks free space every :data:`DISK_CHECK_EVERY` bytes written into ``folder``."""

    def __init__(self, folder: Path, what: str) -> None:
        self.folder = folder
        self.what = what
        self._since = 0

    def wrote(self, n: int) -> None:
        self._since += n
        if self._since >= DISK_CHECK_EVERY:
            self._since = 0
            check_disk(self.folder, 0, self.what)


def write_failed(path: Path, exc: OSError, what: str) -> MmloomError:
    """The one-message error for a failed write (a fault of the environment, not of the data)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(
            f"the disk filled up while writing {what} ({path}): {exc.strerror}. Free some "
            "space, or pass --to a folder on a larger disk, and run the same command again"
        )
    return MmloomError(
        f"could not write {what} ({path}): {exc.strerror or exc}. Check that folder's disk "
        "and permissions, and run the same command again"
    )
