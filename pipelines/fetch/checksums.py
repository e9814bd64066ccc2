"""Per-source checksum files, kept the TFDS way (``checksums.tsv``: url, size, sha256, filename).

Two files take part for a source ``<name>``:

* the **committed** file ``sources/<name>/checksums.tsv`` (in the registered source's
  folder; or ``<checksums_dir>/<name>/checksums.tsv``): what the project knows about each
  published file. A row whose size or sha256 is ``-`` is not known yet.
* the **recorded** file ``<to>/<name>/checksums.tsv`` written by ``mmloom fetch`` next to the
  fetched data. A file whose sha256 the committed file does not know is hashed on its first
  fetch and recorded there (with the hub commit a moving revision resolved to) once it has
  been laid out: an archive only after it unpacked safely and within the caps, so a corrupt
  or hostile download never becomes the reference. Every later fetch verifies against that
  record. ``--register-checksums`` copies recorded rows into the
  committed file, which is how a row becomes known for everyone (TFDS
  ``--register_checksums``).

Rows are keyed by ``filename``, which is unique within a source. Lines starting with ``#``
are comments and are kept when the file is rewritten.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from schemas.errors import MmloomError
from sources import get_source

UNKNOWN = "-"
CHECKSUMS_FILE = "checksums.tsv"


@dataclass(frozen=True)
class Checksum:
    """One row: where a file is published, and its size and sha256 when known."""

    url: str
    size: int | None
    sha256: str | None
    filename: str

    def known(self) -> bool:
        return self.sha256 is not None

    def line(self) -> str:
        size = UNKNOWN if self.size is None else str(self.size)
        return "\t".join((self.url, size, self.sha256 or UNKNOWN, self.filename))


def parse_checksums(text: str, path: str) -> dict[str, Checksum]:
    """Rows of a checksums file by filename; a malformed line is an error naming the line."""
    rows: dict[str, Checksum] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 4:
            raise MmloomError(
                f"{path}:{n}: expected 4 tab-separated columns (url, size, sha256, filename), "
                f"got {len(parts)}; fix or delete the line"
            )
        url, size, sha, filename = parts
        if size != UNKNOWN and not size.isdigit():
            raise MmloomError(f"{path}:{n}: size {size!r} is not a number or '-'")
        if sha != UNKNOWN and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise MmloomError(f"{path}:{n}: sha256 {sha!r} is not 64 lower-case hex digits or '-'")
        rows[filename] = Checksum(
            url=url,
            size=None if size == UNKNOWN else int(size),
            sha256=None if sha == UNKNOWN else sha,
            filename=filename,
        )
    return rows


def read_checksums(path: Path) -> dict[str, Checksum]:
    if not path.is_file():
        return {}
    return parse_checksums(path.read_text(encoding="utf-8"), str(path))


def write_checksums(path: Path, rows: dict[str, Checksum], header: str = "") -> None:
    """Rewrite ``path`` with ``rows`` (sorted by filename), keeping its comment lines."""
    comments: list[str] = []
    if path.is_file():
        comments = [
            ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("#")
        ]
    if not comments and header:
        comments = [f"# {ln}" if ln else "#" for ln in header.splitlines()]
    lines = [*comments, *(rows[k].line() for k in sorted(rows))]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def committed_path(source: str, checksums_dir: Path | None = None) -> Path:
    if checksums_dir is not None:
        return checksums_dir / source / CHECKSUMS_FILE
    return get_source(source).checksums_file


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ChecksumBook:
    """The committed and recorded rows of one source, and the rule that picks between them.

    The committed row wins where it knows the sha256; otherwise a recorded row is used;
    otherwise the file is unknown and gets recorded on this fetch.
    """

    def __init__(self, source: str, data_dir: Path, checksums_dir: Path | None = None) -> None:
        self.source = source
        self.committed_file = committed_path(source, checksums_dir)
        self.recorded_file = data_dir / CHECKSUMS_FILE
        self.committed = read_checksums(self.committed_file)
        self.recorded = read_checksums(self.recorded_file)

    def expected(self, filename: str) -> Checksum | None:
        """The row to verify ``filename`` against (None: unknown, record it)."""
        row = self.committed.get(filename)
        if row is not None and row.known():
            return row
        rec = self.recorded.get(filename)
        if rec is not None and rec.known():
            return rec
        return None

    def where(self, filename: str) -> Path:
        """The file that holds the expected row of ``filename``."""
        row = self.committed.get(filename)
        return self.committed_file if row is not None and row.known() else self.recorded_file

    def url(self, filename: str, default: str) -> str:
        """The URL to fetch: a recorded (pinned) URL, else the committed one, else default."""
        for rows in (self.recorded, self.committed):
            if filename in rows and rows[filename].url:
                return rows[filename].url
        return default

    def size_hint(self, filename: str) -> int | None:
        """The size a row gives for ``filename`` (committed first), sha256 known or not."""
        for rows in (self.committed, self.recorded):
            row = rows.get(filename)
            if row is not None and row.size is not None:
                return row.size
        return None

    def where_size(self, filename: str) -> Path:
        """The file whose row gives :meth:`size_hint`."""
        row = self.committed.get(filename)
        return (
            self.committed_file
            if row is not None and row.size is not None
            else (self.recorded_file)
        )

    def record(self, row: Checksum) -> None:
        """Keep ``row`` in the recorded file next to the data (written at once)."""
        self.recorded[row.filename] = row
        write_checksums(
            self.recorded_file,
            self.recorded,
            header=(
                f"Checksums of the {self.source} files fetched into this folder, recorded by\n"
                "`mmloom fetch` (url, size, sha256, filename). Rows the project's\n"
                f"sources/{self.source}/checksums.tsv does not know were recorded on first fetch;\n"
                "every later fetch verifies against them."
            ),
        )

    def register(self) -> list[str]:
        """Copy recorded rows into the committed file (``--register-checksums``)."""
        changed = []
        for name, rec in self.recorded.items():
            old = self.committed.get(name)
            if old is None or not old.known() or old.url != rec.url:
                self.committed[name] = replace(rec)
                changed.append(name)
        if changed:
            write_checksums(self.committed_file, self.committed)
        return changed
