"""What ``mmloom fetch toy`` downloads (URLs: ``checksums.tsv``): the problems, placed, and
an archive of their images, unpacked."""

from __future__ import annotations

from typing import Any

from sources.spec import FetchSpec, FileJob, Place, Plan, Unpack, images_into, package_urls


def plan(splits: tuple[str, ...], options: dict[str, Any]) -> Plan:
    urls = package_urls(__package__)
    jobs = [
        FileJob("toy.jsonl", urls["toy.jsonl"], Place("toy.jsonl")),
        FileJob("toy_images.tar.gz", urls["toy_images.tar.gz"], Unpack(images_into("images"))),
    ]
    return Plan("toy", splits, jobs, {"data": "toy/toy.jsonl", "images": "toy/images"})


FETCH = FetchSpec(splits=("test",), default_splits=("test",), plan=plan)
