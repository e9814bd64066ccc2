"""What ``mmloom fetch mathvista`` downloads: the testmini parquet from the hub, or (``github``
layout) testmini.json and query.json from GitHub plus the images testmini names from the
hub's images.zip. URLs: ``checksums.tsv``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.errors import MmloomError
from sources.spec import FetchOption, FetchSpec, FileJob, Place, Plan, Select, Unpack, package_urls

TESTMINI_PARQUET = "testmini-00000-of-00001-725687bf7a18d64b.parquet"
LAYOUT = FetchOption(
    flag="--mathvista-layout",
    choices=("parquet", "github"),
    default="parquet",
    help="parquet: the HF testmini parquet (images inside, 142 MB); github: testmini.json "
    "and query.json from GitHub plus images.zip from the hub (866 MB)",
)


def images_of_testmini(root: Path) -> Select:
    """The members of images.zip that ``data/testmini.json`` (laid out before) names."""
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
    return lambda name: f"data/{name}" if name in wanted else None


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    urls = package_urls(__package__)
    layout = options.get(LAYOUT.key, LAYOUT.default)
    if layout == "parquet":
        jobs = [
            FileJob(
                TESTMINI_PARQUET,
                urls[TESTMINI_PARQUET],
                Place(f"data/{TESTMINI_PARQUET}"),
                size_note="142 MB",
            )
        ]
        config = {"parquet": "mathvista/data/testmini-*.parquet", "splits": list(splits)}
        return Plan("mathvista", splits, jobs, config)
    jobs = [
        # the commits the sample's files were taken from (sample/mathvista/SOURCE.md)
        FileJob("testmini.json", urls["testmini.json"], Place("data/testmini.json")),
        FileJob("query.json", urls["query.json"], Place("data/query.json")),
        FileJob(
            "images.zip",
            urls["images.zip"],
            Unpack(select_in=images_of_testmini),
            size_note="~866 MB",
        ),
    ]
    return Plan("mathvista", splits, jobs, {"root": "mathvista/data", "splits": list(splits)})


FETCH = FetchSpec(splits=("testmini",), default_splits=("testmini",), plan=plan, options=(LAYOUT,))
