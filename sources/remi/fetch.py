"""What ``mmloom fetch remi`` downloads: one parquet file per split from the hub (URLs:
``checksums.tsv``)."""

from __future__ import annotations

from typing import Any

from sources.spec import FetchSpec, FileJob, Place, Plan, package_urls


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    urls = package_urls(__package__)
    sizes = {"train": "~5 MB", "test": "~561 MB"}
    jobs = [
        FileJob(f"{s}.parquet", urls[f"{s}.parquet"], Place(f"{s}.parquet"), size_note=sizes[s])
        for s in splits
    ]
    return Plan("remi", splits, jobs, {"parquet": "remi/*.parquet"})


FETCH = FetchSpec(splits=("test", "train"), default_splits=("test",), plan=plan)
