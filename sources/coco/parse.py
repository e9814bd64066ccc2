"""COCO 2017 captions + instances -> MIA-Bench-style instruction-following (IF) records.

Pure functions, no Beam, in three modules:

* :mod:`sources.coco.join` (reading): one captions file joined with its instances file
  becomes one item per image, or a RecordError per unusable unit (reasons listed there).
* :mod:`sources.coco.instructions`: the layered MIA-Bench instruction of one item.
* this module: the config check and :func:`restructure`, one item -> one IF draft record.

Restructure reasons: ``not_enough_facts`` (fewer usable component types than
``min_components``), ``unmapped_supercategory`` (a supercategory missing from
``fields.yaml``).
"""

from __future__ import annotations

from typing import Any

from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import require_path
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.taxonomy import source_table
from sources.base import Item, source_options
from sources.coco.instructions import (
    build_components,
    category_stats,
    complexity,
    component_range,
    dominant_supercategory,
    instruction_text,
    reference_text,
)
from sources.coco.join import SOURCE, SPLITS, paths

LICENSE = "CC BY 4.0 (COCO annotations); images: Flickr, per-image licence"


def check_options(options: dict[str, Any]) -> None:
    """Config check before launch.

    Raises:
        PipelineConfigError: ``root`` unset, a derived or overridden path missing, an
        unknown split, or ``min_components`` > ``max_components``.
    """
    options = source_options(SOURCE, options)
    split = options["split"]
    if split not in SPLITS:
        raise PipelineConfigError(f"sources.coco.split must be one of {SPLITS}, not {split!r}")
    require_path(options, "root", SOURCE)
    for key, value in paths(options).items():
        require_path({key: value}, key, SOURCE)
    lo, hi = component_range(options)
    if lo > hi:
        raise PipelineConfigError(
            f"sources.coco.min_components ({lo}) is larger than max_components ({hi})"
        )


def field_for(instances: list[dict[str, Any]]) -> tuple[str, str, str | None]:
    """(field, subfield, dominant supercategory) through ``fields.yaml``.

    Raises:
        RecordError(unmapped_supercategory): the dominant supercategory is not in the table.
    """
    table = source_table(SOURCE)
    sc = dominant_supercategory(instances)
    if sc is None:
        target = table["no_instances"]
    else:
        target = table["dominant_supercategory"].get(sc)
        if target is None:
            raise RecordError(
                "unmapped_supercategory",
                f"supercategory {sc!r} is not in sources/coco/fields.yaml",
            )
    return target["field"], target["subfield"], sc


def instance_summary(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(inst) for inst in instances]


def restructure(item: Item, options: dict[str, Any]) -> dict[str, Any]:
    """One COCO image item -> one IF draft record.

    Raises:
        RecordError(not_enough_facts | unmapped_supercategory).
    """
    split = item["split"]
    image = item["image"]
    field, subfield, dominant = field_for(item["instances"])
    components = build_components(item, options)
    text = instruction_text(components)
    reference = reference_text(item, components)
    refs = ImageRefs()
    ref = refs.add(
        image["uri"],
        license=image["license_name"],
        root=paths(options)["images"],
        source_uri=image.get("coco_url"),  # COCO's published address of the image
    )
    stats = category_stats(item["instances"])
    return new_record(
        record_id=make_id("IF", SOURCE, split, item["source_id"]),
        category="IF",
        field=field,
        subfield=subfield,
        question=[seg(text, ref)],
        answer=[seg(reference)],
        gt_answer=[seg(reference)],
        images=refs,
        instruction={"complexity": complexity(components), "components": components},
        provenance=provenance(SOURCE, split, item["source_id"], LICENSE, item["source_file"]),
        source_metadata={
            "image_id": item["source_id"],
            "file_name": image["file_name"],
            "width": image["width"],
            "height": image["height"],
            "coco_url": image["coco_url"],
            "flickr_url": image["flickr_url"],
            "date_captured": image["date_captured"],
            "image_license": {
                "id": image["license_id"],
                "name": image["license_name"],
                "url": image["license_url"],
            },
            "caption_ids": [c["id"] for c in item["captions"]],
            "instances_file": item["instances_file"],
            "instances": instance_summary(item["instances"]),
            "category_counts": {
                name: {"count": s["count"], "crowd": s["crowd"]} for name, s in stats.items()
            },
            "dominant_supercategory": dominant,
            "seed": int(source_options(SOURCE, options)["seed"]),
        },
    )
