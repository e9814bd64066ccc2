"""What ``mmloom fetch coco`` downloads: the annotations and one split's images (URLs:
``checksums.tsv``)."""

from __future__ import annotations

from typing import Any

from sources.spec import FetchSpec, FileJob, Plan, Unpack, package_urls


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    (split,) = splits
    urls = package_urls(__package__)
    want = {
        f"annotations/captions_{split}2017.json": f"annotations/captions_{split}2017.json",
        f"annotations/instances_{split}2017.json": f"annotations/instances_{split}2017.json",
    }
    folder = f"{split}2017"

    def images(name: str) -> str | None:
        return name if name.startswith(f"{folder}/") and not name.endswith("/") else None

    jobs = [
        FileJob(
            "annotations_trainval2017.zip",
            urls["annotations_trainval2017.zip"],
            Unpack(want.get),
            size_note="253 MB",
        ),
        FileJob(
            f"{folder}.zip",
            urls[f"{folder}.zip"],
            Unpack(images),
            size_note={"val": "816 MB", "train": "19.3 GB"}[split],
        ),
    ]
    return Plan("coco", splits, jobs, {"root": "coco", "split": split})


FETCH = FetchSpec(splits=("val", "train"), default_splits=("val",), plan=plan, single_split=True)
