"""ReMI parsing: pure functions from parquet rows to draft MSR records (no Beam here).

ReMI (``mehrankazemi/ReMI`` on Hugging Face) is published as parquet: one row per problem
with ``question`` (text holding ``<image1>`` ... ``<image6>`` tags), ``label`` (the gold
answer, a string), ``task`` (one of 13 names) and ``image_1`` ... ``image_6`` (HF ``Image``
structs ``{bytes, path}``, null when unused; 2 to 6 are used). See sources/remi/README.md.

* :func:`split_of` names the split of a parquet file (``test.parquet``, ``test/0000.parquet``).
* :func:`check_columns` checks a file's arrow schema before any row is read.
* :func:`make_item` turns one row into a reader item (or raises ``missing_key``).
* :func:`split_question` cuts the question at its image tags.
* :func:`restructure` turns an item into a draft record.
"""

from __future__ import annotations

import functools
import posixpath
import re
from typing import Any

from schemas.errors import RecordError
from schemas.fs import require_path
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.taxonomy import source_table

SOURCE = "remi"
CATEGORY = "MSR"
LICENSE = "unclear: HF card says 'cc' with no variant and the LICENSE file is empty"
REQUIRED_COLUMNS = ("question", "label", "task")
IMAGE_COLUMN = re.compile(r"^image_([1-9][0-9]*)$")
# MMIE-Score (docs/mmie-method.md §4.3) keeps at most 3 images while reading a record and
# silently drops items with more than 4 images.
MMIE_TRUNCATE_ABOVE = 3
MMIE_SKIP_ABOVE = 4

# Anything that looks like an image tag; only the exact form ``<imageN>`` (N without
# leading zeros) is valid, the rest (``<image 1>``, ``<Image2>``, ``<image01>``,
# ``<image_3>``, ``<image0>``) is a ``bad_image_tag``.
_TAG_LIKE = re.compile(r"<\s*image\s*_?\s*(\d+)\s*>", re.IGNORECASE)
_SHARD = re.compile(r"^(?P<split>.+?)-(?P<shard>\d{5})-of-\d{5}$")


@functools.cache
def task_table() -> dict[str, dict[str, str]]:
    """ReMI task -> ``{field, subfield}`` from ``sources/remi/fields.yaml`` (targets checked)."""
    return dict(source_table(SOURCE)["tasks"])


def check_options(options: dict[str, Any]) -> None:
    """Config check: ``parquet`` is set and names an existing file or a glob with matches.

    Raises:
        PipelineConfigError: the option is missing or matches nothing.
    """
    require_path(options, "parquet", SOURCE)


def split_of(path: str) -> tuple[str, int]:
    """(split, shard index) of a ReMI parquet file, from its name.

    ``train.parquet`` -> (train, 0); the HF conversion ``.../test/0000.parquet`` -> (test, 0);
    a sharded ``data/test-00001-of-00002.parquet`` -> (test, 1).
    """
    base = posixpath.basename(path.rstrip("/"))
    stem = base.rpartition(".")[0] or base
    m = _SHARD.match(stem)
    if m:
        return m.group("split"), int(m.group("shard"))
    if stem.isdigit():
        parent = posixpath.basename(posixpath.dirname(path.rstrip("/")))
        return (parent or "unknown"), int(stem)
    return stem, 0


def row_key(split: str, shard: int, row: int) -> str:
    """The item's ``source_id``: ``<split>/<row>``, or ``<split>/<shard>/<row>`` for shards > 0.

    Shard 0 carries no shard token, so the single-file layout (``test.parquet``) and the HF
    conversion (``test/0000.parquet``) give the same ids for the same rows.
    """
    return f"{split}/{row}" if shard == 0 else f"{split}/{shard}/{row}"


def is_string_type(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def check_columns(schema: Any, path: str) -> list[int]:
    """Check a file's arrow schema; return the image numbers it has columns for, sorted.

    Extra columns are tolerated (and not read). ``question``, ``label`` and ``task`` must be
    strings; each ``image_N`` column must be an HF Image struct with a ``bytes`` child (or an
    all-null column).

    Raises:
        RecordError(malformed_file): a required column is missing or has the wrong type.
    """
    import pyarrow as pa

    names = list(schema.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise RecordError(
            "malformed_file",
            f"{path}: missing required column(s) {missing}; found columns {names}",
        )
    for name in REQUIRED_COLUMNS:
        arrow_type = schema.field(name).type
        if not is_string_type(arrow_type):
            raise RecordError(
                "malformed_file", f"{path}: column {name!r} has type {arrow_type}, not string"
            )
    numbers: list[int] = []
    for name in names:
        m = IMAGE_COLUMN.match(name)
        if not m:
            continue
        arrow_type = schema.field(name).type
        ok = pa.types.is_null(arrow_type) or (
            pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0
        )
        if not ok:
            raise RecordError(
                "malformed_file",
                f"{path}: column {name!r} has type {arrow_type}, not struct<bytes, path>",
            )
        numbers.append(int(m.group(1)))
    if not numbers:
        raise RecordError("malformed_file", f"{path}: no image_N columns; found columns {names}")
    return sorted(numbers)


def make_item(
    row: dict[str, Any], *, path: str, split: str, shard: int, index: int, image_numbers: list[int]
) -> dict[str, Any]:
    """One parquet row -> a reader item (plain, picklable dict; image bytes embedded).

    Raises:
        RecordError(missing_key): ``question``, ``label`` or ``task`` is null.
    """
    source_id = row_key(split, shard, index)
    for key in REQUIRED_COLUMNS:
        if row.get(key) is None:
            raise RecordError("missing_key", f"{path} row {index}: {key!r} is null")
    images: dict[int, dict[str, Any] | None] = {}
    for n in image_numbers:
        value = row.get(f"image_{n}")
        if value is None:
            images[n] = None
        else:
            images[n] = {"bytes": value.get("bytes"), "path": value.get("path")}
    return {
        "source": SOURCE,
        "source_id": source_id,
        "split": split,
        "source_file": path,
        "shard": shard,
        "row": index,
        "question": row["question"],
        "label": row["label"],
        "task": row["task"],
        "images": images,
    }


def split_question(question: str, where: str = "question") -> list[tuple[str, Any]]:
    """Cut ``question`` at its ``<imageN>`` tags into ``("text", str)`` / ``("image", N)`` parts.

    Text between, before and after tags is kept verbatim; pieces that are empty or only
    whitespace (e.g. the space in ``<image2> <image3>``) are dropped. Adjacent tags give
    consecutive image parts.

    Raises:
        RecordError(bad_image_tag): a tag-like token that is not exactly ``<imageN>`` with
        N >= 1 and no leading zero (``<image0>``, ``<image 1>``, ``<Image2>``, ``<image01>``).
    """
    parts: list[tuple[str, Any]] = []
    pos = 0
    for m in _TAG_LIKE.finditer(question):
        digits = m.group(1)
        n = int(digits)
        if m.group(0) != f"<image{digits}>" or n < 1 or digits != str(n):
            detail = f"{where}: malformed image tag {m.group(0)!r} at offset {m.start()}"
            raise RecordError("bad_image_tag", detail)
        text = question[pos : m.start()]
        if text.strip():
            parts.append(("text", text))
        parts.append(("image", n))
        pos = m.end()
    text = question[pos:]
    if text.strip():
        parts.append(("text", text))
    return parts


def _check_images(parts: list[tuple[str, Any]], images: dict[Any, Any], where: str) -> list[int]:
    """Check tags against the image columns; return the tag numbers in first-use order."""
    images = {int(k): v for k, v in images.items()}
    order: list[int] = []
    for kind, value in parts:
        if kind != "image":
            continue
        if value not in images:
            have = ", ".join(f"image_{n}" for n in sorted(images)) or "none"
            raise RecordError(
                "bad_image_tag", f"{where}: tag <image{value}> has no column image_{value} ({have})"
            )
        if images[value] is None:
            raise RecordError(
                "image_tag_without_image", f"{where}: tag <image{value}> but image_{value} is null"
            )
        if not images[value].get("bytes"):
            raise RecordError(
                "image_without_bytes", f"{where}: image_{value} is set but has no bytes"
            )
        if value not in order:
            order.append(value)
    untagged = [n for n in sorted(images) if images[n] is not None and n not in order]
    if untagged:
        names = ", ".join(f"image_{n}" for n in untagged)
        raise RecordError("image_without_tag", f"{where}: {names} set but never tagged")
    if not order:
        raise RecordError("no_images", f"{where}: no image tags and no images")
    return order


def restructure(item: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ReMI item -> a draft MSR record.

    Question: the ``question`` text cut at its tags into text and image segments, in text
    order. Answer and gt_answer: one text segment holding the raw ``label``. Field and
    subfield: the task's row in ``fields.yaml``.

    Raises:
        RecordError: ``missing_key``, ``unknown_task``, ``empty_label``, ``bad_image_tag``,
        ``image_tag_without_image``, ``image_without_bytes``, ``image_without_tag``,
        ``no_images`` (see sources/remi/README.md).
    """
    path = item.get("source_file", "?")
    where = f"{path} row {item.get('row', '?')}"
    for key in ("question", "label", "task"):
        if not isinstance(item.get(key), str):
            raise RecordError("missing_key", f"{where}: {key!r} is missing or not a string")
    task = item["task"]
    target = task_table().get(task)
    if target is None:
        known = ", ".join(task_table())
        raise RecordError("unknown_task", f"{where}: task {task!r} is not one of {known}")
    label = item["label"]
    if label == "":
        raise RecordError("empty_label", f"{where}: label is the empty string")

    parts = split_question(item["question"], where)
    order = _check_images(parts, item.get("images") or {}, where)
    images = {int(k): v for k, v in item["images"].items()}

    refs = ImageRefs()
    ref_of = {
        n: refs.add(f"{path}#row={item['row']}/image_{n}", data=images[n]["bytes"], license=LICENSE)
        for n in order
    }
    question = [seg(text=v) if kind == "text" else seg(image=ref_of[v]) for kind, v in parts]
    split = item["split"]
    shard = item.get("shard", 0)
    id_parts = [split, shard, item["row"]] if shard else [split, item["row"]]
    n_images = len(order)
    return new_record(
        record_id=make_id(CATEGORY, SOURCE, *id_parts),
        category=CATEGORY,
        field=target["field"],
        subfield=target["subfield"],
        question=question,
        answer=[seg(text=label)],
        gt_answer=[seg(text=label)],
        images=refs,
        provenance=provenance(SOURCE, split, item["source_id"], LICENSE, path),
        question_format="open_ended",
        answer_type="text",
        answer_value=label,
        source_metadata={
            "task": task,
            "n_images": n_images,
            "image_tags": [v for kind, v in parts if kind == "image"],
            "row": item["row"],
            "shard": shard,
            "mmie_truncated": n_images > MMIE_TRUNCATE_ABOVE,
            "mmie_skipped": n_images > MMIE_SKIP_ABOVE,
        },
    )
