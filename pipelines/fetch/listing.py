"""What a fetch would do, before it does it: ``mmloom fetch list`` and ``--dry-run``.

Every file of the chosen sources' plans, with its size (exact from a checksums row, else the
publisher's approximate size from the source's plan, else unknown), the source's licence (its
``card.yaml``), where it comes from (a URL, or "by hand" with where to get it), the path it
goes to, and, when a fetch folder is given, how far it got there; then the totals of what a
script downloads and of what must be downloaded by hand. Read from the registry and the
plans only: nothing is downloaded or written.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.fetch.core import FetchSettings, book_of, is_done, manual_path
from pipelines.fetch.hub import parse_hf_url
from pipelines.fetch.limits import human
from pipelines.fetch.sources import Plan
from schemas.errors import MmloomError
from sources import get_source

_NOTE = re.compile(r"^~?\s*(\d+(?:\.\d+)?)\s*([KMGT])B$")
_UNIT = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class Entry:
    """One file of a plan, as ``fetch list`` shows it (``--json`` writes these fields)."""

    source: str
    file: str
    size: int | None  # bytes; None: nobody publishes it
    size_exact: bool  # from a checksums row (else the publisher's approximate size)
    licence: str
    url: str  # where a script downloads it, or the published link of a file got by hand
    by_hand: bool
    get_from: str  # for a file got by hand: where a person gets it
    target: str  # where the file goes: the download, or the place to put it by hand
    laid_out: str  # the folder the build reads, <to>/<source>
    status: str | None  # with a fetch folder: fetched, in place, missing, downloaded, to fetch

    def size_text(self) -> str:
        if self.size is None:
            return "unknown size"
        return human(self.size) if self.size_exact else f"~{human(self.size)}"


def note_bytes(note: str) -> int | None:
    """``"~866 MB"`` -> 866000000; None when the note gives no single size."""
    m = _NOTE.match(note.strip())
    return int(float(m.group(1)) * _UNIT[m.group(2)]) if m else None


def _download_path(settings: FetchSettings, source: str, filename: str, url: str) -> Path:
    downloads = settings.to / "downloads" / source
    if url.startswith("hf://"):
        try:
            return downloads / "hub" / parse_hf_url(url).path
        except MmloomError:
            return downloads / filename
    return downloads / filename


def entries(plans: list[Plan], settings: FetchSettings, with_status: bool) -> list[Entry]:
    """The files of ``plans`` in order (``with_status``: look at what is in ``settings.to``)."""
    out: list[Entry] = []
    for plan in plans:
        book = book_of(plan, settings)
        if not with_status:  # no fetch folder: only the project's rows count
            book.recorded = {}
        licence = get_source(plan.source).card.licence.get("short", "not stated")
        for job in plan.jobs:
            url = book.url(job.filename, job.url)
            size, exact = book.size_hint(job.filename), True
            if size is None:
                size, exact = note_bytes(job.size_note), False
            hand = manual_path(settings, plan.source, job)
            download = _download_path(settings, plan.source, job.filename, url)
            status = None
            if with_status:
                if is_done(plan, job, settings, book):
                    status = "fetched"
                elif hand.is_file():
                    status = "in place"
                elif job.manual:
                    status = "missing"
                elif download.is_file():
                    status = "downloaded"
                else:
                    status = "to fetch"
            out.append(
                Entry(
                    source=plan.source,
                    file=job.filename,
                    size=size,
                    size_exact=exact and size is not None,
                    licence=licence,
                    url=url,
                    by_hand=bool(job.manual),
                    get_from=job.manual,
                    target=str(hand if job.manual else download),
                    laid_out=str(settings.to / plan.source),
                    status=status,
                )
            )
    return out


def totals(items: list[Entry]) -> dict[str, dict[str, int | bool]]:
    """Per kind (``scriptable``, ``by_hand``, ``all``): files, known bytes, files of unknown
    size, and whether the bytes are exact (every size from a checksums row)."""
    out = {}
    for kind, chosen in (
        ("scriptable", [e for e in items if not e.by_hand]),
        ("by_hand", [e for e in items if e.by_hand]),
        ("all", items),
    ):
        known = [e for e in chosen if e.size is not None]
        out[kind] = {
            "files": len(chosen),
            "bytes": sum(e.size or 0 for e in known),
            "unknown_size": len(chosen) - len(known),
            "exact": all(e.size_exact for e in known),
        }
    return out


def total_text(t: dict[str, int | bool]) -> str:
    size = human(int(t["bytes"]))
    text = f"{t['files']} files, {size if t['exact'] else '~' + size}"
    if t["unknown_size"]:
        text += f" + {t['unknown_size']} of unknown size"
    return text


def render_json(plans: list[Plan], items: list[Entry], to: str | None) -> str:
    body = {
        "to": to,
        "sources": [{"source": p.source, "splits": list(p.splits)} for p in plans],
        "files": [asdict(e) for e in items],
        "totals": totals(items),
    }
    return json.dumps(body, indent=2)


def render_text(plans: list[Plan], items: list[Entry], to: str | None) -> str:
    lines = [f"Fetch plan into {to}" if to else "Fetch plan (DIR: the folder given with --to)"]
    for plan in plans:
        mine = [e for e in items if e.source == plan.source]
        lines.append("")
        lines.append(
            f"{plan.source} ({', '.join(plan.splits)}), laid out in {mine[0].laid_out}/"
            if mine
            else f"{plan.source} ({', '.join(plan.splits)})"
        )
        if mine:
            lines.append(f"  licence: {mine[0].licence}")
        for e in mine:
            status = f"  [{e.status}]" if e.status else ""
            how = "by hand" if e.by_hand else "download"
            lines.append(f"  {e.file}  {e.size_text()}  {how}{status}")
            if e.by_hand:
                lines.append(f"      by hand from {e.get_from}")
                lines.append(f"      put it at    {e.target}")
            else:
                lines.append(f"      from {e.url}")
                lines.append(f"      to   {e.target}")
    t = totals(items)
    lines.append("")
    lines.append(f"Downloaded by script: {total_text(t['scriptable'])}")
    lines.append(f"Downloaded by hand:   {total_text(t['by_hand'])}")
    lines.append(f"All:                  {total_text(t['all'])}")
    lines.append(
        "Sizes with ~ are the publishers' approximate ones; unpacking needs about as much again."
    )
    lines.append(_scriptable_hint(plans, to))
    return "\n".join(lines)


def _scriptable_hint(plans: list[Plan], to: str | None) -> str:
    """Which of the sources need nothing by hand, and the command that fetches just them."""
    scriptable = [p.source for p in plans if not any(j.manual for j in p.jobs)]
    if len(scriptable) == len(plans):
        return "Nothing is to be downloaded by hand."
    if not scriptable:
        return "Every source here needs files downloaded by hand."
    return (
        f"Sources that need nothing by hand: {', '.join(scriptable)} (`mmloom fetch "
        f"{' '.join(scriptable)} --to {to or 'DIR'}` fetches just those, exit status 0); a "
        "fetch of all gets every file a script can and then lists those to get by hand."
    )
