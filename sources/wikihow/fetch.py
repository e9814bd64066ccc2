"""What ``mmloom fetch wikihow`` lays out: the VGSI text and images, both downloaded by hand
(published only in a Google Drive folder; rows in ``checksums.tsv`` without a URL)."""

from __future__ import annotations

import posixpath
from typing import Any

from sources.spec import FetchSpec, FileJob, Place, Plan, Unpack, package_urls

VGSI_PAGE = (
    "the Google Drive folder linked from https://github.com/YueYANG1996/wikiHow-VGSI "
    "(https://drive.google.com/drive/folders/1hjjcNSUSqv8AbA7R-5lIKmui-ySCEWJw)"
)


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    urls = package_urls(__package__)

    def images(name: str) -> str | None:
        base = posixpath.basename(name)
        if not base.lower().endswith(".png") or base.startswith("."):
            return None
        rel = name[len("wiki_images/") :] if name.startswith("wiki_images/") else name
        return f"wiki_images/{rel}"

    jobs = [
        FileJob(
            "WikihowText_data.json",
            urls["WikihowText_data.json"],
            Place("WikihowText_data.json"),
            manual=VGSI_PAGE,
        ),
        FileJob("wiki_images.zip", urls["wiki_images.zip"], Unpack(images), manual=VGSI_PAGE),
    ]
    config = {"text": "wikihow/WikihowText_data.json", "images": "wikihow/wiki_images"}
    return Plan("wikihow", splits, jobs, config)


FETCH = FetchSpec(splits=("all",), default_splits=("all",), plan=plan)
