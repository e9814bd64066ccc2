"""What ``mmloom fetch vist`` downloads: the SIS and DII annotations, and the chosen splits'
image archives (Google Drive files, fetched by hand). URLs: ``checksums.tsv``."""

from __future__ import annotations

from typing import Any

from sources.spec import FetchSpec, FileJob, Plan, Unpack, by_basename, images_into, package_urls

VIST_PAGE = "https://visionandlanguage.net/VIST/dataset.html"


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    urls = package_urls(__package__)
    sis = {f"{s}.story-in-sequence.json": f"sis/{s}.story-in-sequence.json" for s in splits}
    dii = {
        f"{s}.description-in-isolation.json": f"dii/{s}.description-in-isolation.json"
        for s in splits
    }
    jobs = [
        FileJob(
            "SIS-with-labels.tar.gz",
            urls["SIS-with-labels.tar.gz"],
            Unpack(by_basename(sis)),
            size_note="~23 MB",
        ),
        FileJob(
            "DII-with-labels.tar.gz",
            urls["DII-with-labels.tar.gz"],
            Unpack(by_basename(dii)),
            size_note="~18 MB",
        ),
    ]
    sizes = {"test_images.tar.gz": "~35 GB", "val_images.tar.gz": "~28 GB"}
    for split in splits:
        names = (
            [f"train_split.{i}.tar.gz" for i in range(13)]
            if split == "train"
            else [f"{split}_images.tar.gz"]
        )
        for name in names:
            drive = urls[name]  # a Google Drive file linked from VIST_PAGE
            jobs.append(
                FileJob(
                    name,
                    drive,
                    Unpack(images_into(f"images/{split}")),
                    manual=f"{drive} (linked from {VIST_PAGE}, a Google Drive file)",
                    size_note=sizes.get(name, "~20 GB"),  # 13 files, ~256 GB in all
                )
            )
    config = {
        "sis": "vist/sis/*.story-in-sequence.json",
        "dii": "vist/dii/*.description-in-isolation.json",
        "images": "vist/images",
    }
    return Plan("vist", splits, jobs, config)


FETCH = FetchSpec(splits=("test", "val", "train"), default_splits=("test",), plan=plan)
