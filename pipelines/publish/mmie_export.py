"""MMIE's evaluation input format, so MMIE's own scorer runs on the release unchanged.

``mmie/data.json`` is a JSON list of ``{id, question, answer, model, gt_answer}`` (MMIE README,
Lillianwei-h/MMIE; docs/mmie-method.md §4 and §8.1): segments ``{text, image}`` with image paths
relative to ``mmie/`` (``images/<sha256>.<ext>``), ``model: "gt"``, the reference in ``answer``;
``gt_answer`` is ``[{"text": null, "image": null}]`` for SA and PBL and the reference text for
MSR. Our ids already route correctly under MMIE's substring test (one category token, the rest
lower case).

IF items (MIA-Bench style) are **left out**: MMIE's scorer has prompts for SA, PBL and MSR only
and would count an IF item as "Unrecogonized data" after spending a judge call on it. They are
listed in ``mmie/scorer_limits.json`` under ``not_exported``; the Parquet data holds them.

``mmie/scorer_limits.json`` also lists, from an exact re-implementation of MMIE's
``dataset.py`` reading rules, the items the scorer **truncates** (question images are all kept;
answer segments are read until 3 images in total have been read, and everything after that,
text included, is dropped) and the items it **skips** (more than 4 images left after that,
i.e. 5 or more question images), with counts per category (``by_category``). An SA or PBL item
at mmloom's default caps (``sources.vist.answer_segments`` and
``sources.wikihow.max_answer_steps`` 3: one question image and three answer segments, the
shape of MMIE Figure 1) has 4 images; the scorer reads 3 of them and drops the last answer segment,
text included, so such items are listed as truncated.
"""

from __future__ import annotations

import json
import os
from typing import Any

from schemas.store import ImageStore

MMIE_CATEGORIES = ("SA", "PBL", "MSR")
NULL_GT = [{"text": None, "image": None}]


def scorer_view(record: dict[str, Any]) -> dict[str, Any]:
    """What MMIE's ``dataset.get_dataset`` reads of a record (all images assumed present)."""
    image_no = sum(1 for s in record["question"] if s["image"] is not None)
    answer = record["answer"]
    read_images = 0
    cut: int | None = None  # index of the answer segment where reading stopped
    image_dropped_at_cut = False
    for i, seg in enumerate(answer):
        if image_no > 2:
            cut, image_dropped_at_cut = i, seg["image"] is not None
            break
        if seg["image"] is not None:
            image_no += 1
            read_images += 1
        if image_no > 2:
            cut = i
            break
    dropped_segments = [] if cut is None else answer[cut + 1 :]
    dropped_images = sum(1 for s in dropped_segments if s["image"] is not None) + int(
        image_dropped_at_cut
    )
    dropped_texts = sum(1 for s in dropped_segments if s["text"] is not None)
    n_q = sum(1 for s in record["question"] if s["image"] is not None)
    n_a = sum(1 for s in answer if s["image"] is not None)
    return {
        "id": record["id"],
        "n_images_question": n_q,
        "n_images_answer": n_a,
        "images_scored": n_q + read_images,
        "answer_images_dropped": dropped_images,
        "answer_text_segments_dropped": dropped_texts,
        "truncated": dropped_images > 0 or dropped_texts > 0,
        "skipped": n_q + read_images > 4,
    }


def to_mmie(record: dict[str, Any]) -> dict[str, Any]:
    """The MMIE evaluation item of an SA, PBL or MSR record.

    Raises:
        ValueError: the record breaks a rule of MMIE's format (a bug upstream: records are
            validated against the schema, which encodes these rules).
    """
    cat = record["category"]
    if cat not in MMIE_CATEGORIES:
        raise ValueError(f"{record['id']}: category {cat} has no MMIE scorer route")
    tokens = [t for t in MMIE_CATEGORIES if t in record["id"]]
    if tokens != [cat] or not record["id"].startswith(cat + "_"):
        raise ValueError(f"{record['id']}: MMIE routes it by substring to {tokens}, not {cat}")
    gt = record["gt_answer"]
    if cat in ("SA", "PBL") and gt != NULL_GT:
        raise ValueError(f"{record['id']}: {cat} gt_answer must be {NULL_GT}")
    if cat == "MSR" and not (gt and isinstance(gt[0]["text"], str) and gt[0]["text"]):
        raise ValueError(f"{record['id']}: MSR gt_answer[0].text must hold the reference")

    def segs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"image": s["image"], "text": s["text"]} for s in items]

    return {
        "answer": segs(record["answer"]),
        "gt_answer": segs(gt),
        "id": record["id"],
        "model": "gt",
        "question": segs(record["question"]),
    }


def export(records: list[dict[str, Any]], out_dir: str, store: ImageStore) -> dict[str, Any]:
    """Write ``data.json``, ``images/`` and ``scorer_limits.json`` under ``out_dir``.

    Args:
        records: the release's records (JSON views) in release order.
        out_dir: the release's ``mmie/`` folder.
        store: the build's image store; images are linked or copied from it one at a time.
    Returns:
        The content of ``scorer_limits.json`` plus ``items`` and ``images`` counts.
    """
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    items: list[dict[str, Any]] = []
    views: list[dict[str, Any]] = []
    not_exported: list[dict[str, str]] = []
    images: set[str] = set()
    for record in records:
        if record["category"] not in MMIE_CATEGORIES:
            not_exported.append(
                {
                    "category": record["category"],
                    "id": record["id"],
                    "reason": "MMIE's scorer has no prompt for this category (IF items are "
                    "MIA-Bench-style; evaluate them with a MIA-Bench judge)",
                }
            )
            continue
        item = to_mmie(record)
        items.append(item)
        views.append(scorer_view(record))
        for seg in item["question"] + item["answer"] + item["gt_answer"]:
            if seg["image"] is not None:
                images.add(seg["image"])
    for path in sorted(images):
        store.copy_to(path, os.path.join(out_dir, path))
    with open(os.path.join(out_dir, "data.json"), "w", encoding="utf-8") as f:
        json.dump(items, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
    by_category: dict[str, dict[str, int]] = {}
    for cat in MMIE_CATEGORIES:
        mine = [v for v in views if v["id"].startswith(cat + "_")]
        cut = sum(1 for v in mine if v["truncated"] and not v["skipped"])
        skipped = sum(1 for v in mine if v["skipped"])
        by_category[cat] = {
            "items": len(mine),
            "read_whole": len(mine) - cut - skipped,
            "skipped": skipped,
            "truncated": cut,
        }
    limits = {
        "by_category": by_category,
        "rules": {
            "truncated": "MMIE dataset.py keeps all question images, reads answer segments "
            "until 3 images in total have been read and drops the rest of the answer (text "
            "included): an item with one question image and three answer segments (mmloom's "
            "default caps, the shape of MMIE Figure 1) loses its last answer segment",
            "skipped": "MMIE dataset.py drops items with more than 4 images after reading",
            "not_exported": "items whose category MMIE's scorer cannot route",
        },
        "skipped": [v for v in views if v["skipped"]],
        "truncated": [v for v in views if v["truncated"] and not v["skipped"]],
        "more_than_3_images": sorted(
            v["id"] for v in views if v["n_images_question"] + v["n_images_answer"] > 3
        ),
        "not_exported": not_exported,
    }
    with open(os.path.join(out_dir, "scorer_limits.json"), "w", encoding="utf-8") as f:
        json.dump(limits, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
    return {**limits, "items": len(items), "images": len(images)}
