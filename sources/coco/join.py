"""COCO 2017: the join of one captions file with its instances file into items.

Pure functions, no Beam. :func:`iter_units` parses one captions file and its instances file
(each once) into one *item* per image of the captions file's ``images`` list, with the
image's captions (all, file order, raw text) and a summary of its instance annotations (ids
as strings, segmentation kind and shape checked, the big mask arrays not carried). Every
other unit (an annotation whose ``image_id`` matches no image, or that has no ``image_id``)
and every image that cannot be used is a RecordError naming the unit instead.

Read reasons, all stable snake_case:

* file-level: ``bad_json`` (captions file unreadable or not JSON), ``missing_key`` (the
  captions file has no ``images`` list), ``not_a_regular_file``, ``file_too_large``,
  ``path_escapes_root`` (the read rules of ``schemas.fs.open_bounded``);
* per image: ``missing_key``, ``bad_value``, ``path_escapes_root``, ``duplicate_image_id``,
  ``unknown_license``, ``no_captions``, ``unknown_category``, ``bad_segmentation``,
  ``bad_instances_file``;
* per orphan annotation: ``unknown_image_id``, ``missing_key``.

The instruction synthesis is in :mod:`sources.coco.instructions`; :mod:`sources.coco.parse`
turns an item into a record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from schemas.errors import RecordError
from schemas.fs import glob_root, join, read_bytes, resolve_under, safe_name
from sources.base import Item, source_options, source_relative

SOURCE = "coco"
SPLITS = ("train", "val")


# --------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------


def paths(options: dict[str, Any]) -> dict[str, str]:
    """The captions file, instances file and images folder the options point at."""
    options = source_options("coco", options)
    split = options["split"]
    root = options.get("root") or ""
    return {
        "captions": options.get("captions")
        or join(root, "annotations", f"captions_{split}2017.json"),
        "instances": options.get("instances")
        or join(root, "annotations", f"instances_{split}2017.json"),
        "images": options.get("images") or join(root, f"{split}2017"),
    }


def file_root(options: dict[str, Any], key: str) -> str | None:
    """The folder the ``captions`` or ``instances`` file must stay in: the COCO root for the
    default path under it, a glob's folder for an override (a plain override: None)."""
    options = source_options("coco", options)
    return glob_root(options[key]) if options.get(key) else options.get("root")


def load_json(uri: str, what: str, *, max_bytes: int, root: str | None = None) -> Any:
    """Read (under ``max_bytes`` and ``root``, see ``schemas.fs``) and parse one COCO JSON
    file (each is one object).

    Raises:
        RecordError(bad_json): the file cannot be read or is not JSON;
        RecordError(not_a_regular_file | file_too_large | path_escapes_root).
    """
    try:
        return json.loads(read_bytes(uri, max_bytes=max_bytes, root=root))
    except RecordError:
        raise
    except Exception as exc:  # any read or decode failure is the same problem for the user
        raise RecordError("bad_json", f"{what} {uri}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------
# Reading: small validators
# --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(obj: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise RecordError("bad_value", f"{where} is a {type(obj).__name__}, not an object")
    for key in keys:
        if key not in obj:
            raise RecordError("missing_key", f"{where} has no {key!r}")


def license_table(captions: dict[str, Any], where: str) -> dict[int, dict[str, Any]]:
    """``licenses[].id`` -> ``{name, url}`` from the captions file.

    Raises:
        RecordError(missing_key | bad_value): no ``licenses`` list or a malformed entry.
    """
    _require(captions, ["licenses"], where)
    if not isinstance(captions["licenses"], list):
        raise RecordError("bad_value", f"{where}: 'licenses' is not a list")
    out: dict[int, dict[str, Any]] = {}
    for i, lic in enumerate(captions["licenses"]):
        _require(lic, ["id", "name"], f"{where} licenses[{i}]")
        if not _is_int(lic["id"]):
            raise RecordError("bad_value", f"{where} licenses[{i}].id is not an integer")
        out[lic["id"]] = {"name": lic["name"], "url": lic.get("url")}
    return out


def category_table(instances: Any, where: str) -> dict[int, dict[str, Any]]:
    """``categories[].id`` -> ``{id, name, supercategory}`` (ids are non-contiguous, 1-90).

    Raises:
        RecordError(missing_key | bad_value): no ``categories``/``annotations`` list, or a
        malformed category.
    """
    _require(instances, ["annotations", "categories"], where)
    for key in ("annotations", "categories"):
        if not isinstance(instances[key], list):
            raise RecordError("bad_value", f"{where}: {key!r} is not a list")
    out: dict[int, dict[str, Any]] = {}
    for i, cat in enumerate(instances["categories"]):
        _require(cat, ["id", "name", "supercategory"], f"{where} categories[{i}]")
        if not _is_int(cat["id"]):
            raise RecordError("bad_value", f"{where} categories[{i}].id is not an integer")
        out[cat["id"]] = {
            "id": cat["id"],
            "name": cat["name"],
            "supercategory": cat["supercategory"],
        }
    return out


def parse_segmentation(segm: Any, height: int, width: int, where: str) -> dict[str, Any]:
    """Check a segmentation's shape and summarise it without its arrays.

    Polygons: a non-empty list of parts, each a flat list of an even number (>= 2) of
    numbers. RLE: ``{"counts", "size": [h, w]}`` with ``size`` equal to the image's size;
    ``counts`` is a list of non-negative ints summing to ``h * w`` (uncompressed, as in the
    instances files) or a non-empty string of COCO's compressed alphabet (``'0'``-``'o'``).

    Returns:
        ``{"kind": "polygons", "parts": n, "points": n}`` or
        ``{"kind": "rle", "size": [h, w], "runs": n}`` or
        ``{"kind": "rle_compressed", "size": [h, w], "chars": n}``.

    Raises:
        RecordError(bad_segmentation): anything else.
    """

    def bad(msg: str) -> RecordError:
        return RecordError("bad_segmentation", f"{where}: {msg}")

    if isinstance(segm, list):
        if not segm:
            raise bad("empty polygon list")
        points = 0
        for j, part in enumerate(segm):
            if not isinstance(part, list) or not part or len(part) % 2:
                raise bad(f"polygon {j} is not a flat list of an even number of coordinates")
            if not all(_is_num(v) for v in part):
                raise bad(f"polygon {j} has a non-numeric coordinate")
            points += len(part) // 2
        return {"kind": "polygons", "parts": len(segm), "points": points}
    if isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            raise bad("RLE needs 'counts' and 'size'")
        size = segm["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            raise bad(f"RLE size {size!r} is not [height, width]")
        if size != [height, width]:
            raise bad(f"RLE size {size} differs from the image size [{height}, {width}]")
        counts = segm["counts"]
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                raise bad("RLE counts has a value that is not a non-negative integer")
            if sum(counts) != height * width:
                raise bad(f"RLE counts sum to {sum(counts)}, not {height} * {width}")
            return {"kind": "rle", "size": list(size), "runs": len(counts)}
        if isinstance(counts, str):
            if not counts or any(not 48 <= ord(ch) <= 111 for ch in counts):
                raise bad("compressed RLE counts is empty or has characters outside '0'-'o'")
            return {"kind": "rle_compressed", "size": list(size), "chars": len(counts)}
        raise bad(f"RLE counts is a {type(counts).__name__}, not a list or a string")
    raise bad(f"segmentation is a {type(segm).__name__}, not polygons or RLE")


def parse_instance(
    ann: dict[str, Any], categories: dict[int, dict[str, Any]], image: dict[str, Any], where: str
) -> dict[str, Any]:
    """One instance annotation -> a small summary (id as a string, category resolved).

    Raises:
        RecordError(missing_key | bad_value | unknown_category | bad_segmentation).
    """
    _require(ann, ["id", "category_id", "bbox", "area", "iscrowd", "segmentation"], where)
    if not _is_int(ann["id"]):
        raise RecordError("bad_value", f"{where}: id {ann['id']!r} is not an integer")
    bbox = ann["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        raise RecordError("bad_value", f"{where}: bbox {bbox!r} is not [x, y, w, h]")
    if bbox[2] < 0 or bbox[3] < 0:
        raise RecordError("bad_value", f"{where}: bbox {bbox!r} has a negative size")
    if not _is_num(ann["area"]) or ann["area"] < 0:
        raise RecordError("bad_value", f"{where}: area {ann['area']!r} is not a number >= 0")
    if ann["iscrowd"] not in (0, 1) or isinstance(ann["iscrowd"], bool):
        raise RecordError("bad_value", f"{where}: iscrowd {ann['iscrowd']!r} is not 0 or 1")
    cat = categories.get(ann["category_id"]) if _is_int(ann["category_id"]) else None
    if cat is None:
        raise RecordError(
            "unknown_category", f"{where}: category_id {ann['category_id']!r} is not in categories"
        )
    segm = parse_segmentation(ann["segmentation"], image["height"], image["width"], where)
    return {
        "id": str(ann["id"]),
        "category_id": cat["id"],
        "category": cat["name"],
        "supercategory": cat["supercategory"],
        "bbox": list(bbox),
        "area": ann["area"],
        "iscrowd": int(ann["iscrowd"]),
        "segmentation": segm,
    }


def _image_entry(
    im: Any, licenses: dict[int, dict[str, Any]], images_dir: str, where: str
) -> dict[str, Any]:
    _require(im, ["id", "file_name", "width", "height", "license"], where)
    if not _is_int(im["id"]):
        raise RecordError("bad_value", f"{where}: id {im['id']!r} is not an integer")
    for key in ("width", "height"):
        if not _is_int(im[key]) or im[key] < 1:
            raise RecordError("bad_value", f"{where}: {key} {im[key]!r} is not a positive integer")
    if not isinstance(im["file_name"], str):
        raise RecordError("bad_value", f"{where}: file_name {im['file_name']!r} is not a string")
    if not _is_int(im["license"]):
        raise RecordError("bad_value", f"{where}: license {im['license']!r} is not an integer")
    name = safe_name(im["file_name"], f"{where} file_name")
    uri = resolve_under(images_dir, name)
    lic = licenses.get(im["license"])
    if lic is None:
        raise RecordError(
            "unknown_license", f"{where}: license {im['license']!r} is not in licenses[]"
        )
    return {
        "id": im["id"],
        "file_name": im["file_name"],
        "uri": uri,
        "width": im["width"],
        "height": im["height"],
        "license_id": im["license"],
        "license_name": lic["name"],
        "license_url": lic["url"],
        "coco_url": im.get("coco_url"),
        "flickr_url": im.get("flickr_url"),
        "date_captured": im.get("date_captured"),
    }


# --------------------------------------------------------------------------------------
# Reading: the units of one captions file
# --------------------------------------------------------------------------------------


def iter_units(
    captions: Any,
    instances: Any,
    *,
    options: dict[str, Any],
    captions_file: str,
    instances_file: str,
    instances_error: RecordError | None = None,
) -> Iterator[Item | RecordError]:
    """Join one captions file with its instances file; yield, once per read unit, its item or
    a RecordError whose ``source_id`` names it (``sources.base``'s protocol).

    Units: every entry of the captions file's ``images`` list (-> an item or a dead
    letter), every caption or instance annotation whose ``image_id`` is missing or matches
    no image (-> a dead letter each). If the captions file has no ``images`` list there are
    no units to enumerate and the file itself is one RecordError.

    Args:
        captions: the parsed captions file (one JSON object).
        instances: the parsed instances file, or None when it could not be read.
        options: the source options (``root``, ``split``, ``images`` ...).
        captions_file / instances_file: the files' URIs (named in details and provenance).
        instances_error: why ``instances`` is None; every image then becomes a
            ``bad_instances_file`` dead letter.
    """
    options = source_options("coco", options)
    split = options["split"]
    images_dir = paths(options)["images"]
    # named as provenance names them: relative to the source's root (annotations/...)
    cap_name = source_relative(captions_file, options)
    inst_name = source_relative(instances_file, options)

    def dead(reason: str, source_id: str, detail: str) -> RecordError:
        return RecordError(reason, detail, source_id)

    if not isinstance(captions, dict) or not isinstance(captions.get("images"), list):
        yield dead("missing_key", cap_name, f"{cap_name} has no 'images' list")
        return

    # File-level problems that every image shares.
    shared: RecordError | None = None
    try:
        licenses = license_table(captions, cap_name)
        _require(captions, ["annotations"], cap_name)
        if not isinstance(captions["annotations"], list):
            raise RecordError("bad_value", f"{cap_name}: 'annotations' is not a list")
    except RecordError as exc:
        shared = exc
        licenses = {}
    categories: dict[int, dict[str, Any]] = {}
    if shared is None:
        try:
            if instances_error is not None:
                raise instances_error
            categories = category_table(instances, inst_name)
        except RecordError as exc:
            shared = RecordError("bad_instances_file", f"{inst_name}: {exc}")

    # Index the images (file order); bad entries become dead letters straight away.
    images: dict[int, dict[str, Any]] = {}
    problems: dict[int, RecordError] = {}
    rejected: set[int] = set()  # dead-lettered image ids: their annotations go with them
    order: list[int] = []
    for pos, im in enumerate(captions["images"]):
        where = f"{cap_name} images[{pos}]"
        image_id = im.get("id") if isinstance(im, dict) else None
        sid = str(image_id) if _is_int(image_id) else f"images[{pos}]"
        if shared is not None:
            yield dead(shared.reason, sid, f"{where}: {shared.detail}")
            continue
        try:
            entry = _image_entry(im, licenses, images_dir, where)
        except RecordError as exc:
            if _is_int(image_id) and image_id not in images:
                rejected.add(image_id)
            yield dead(exc.reason, sid, exc.detail)
            continue
        if entry["id"] in images:
            yield dead("duplicate_image_id", sid, f"{where}: image id {entry['id']} seen before")
            continue
        images[entry["id"]] = entry
        order.append(entry["id"])
    if shared is not None:
        return

    def joinable(annotations: list[Any], kind: str, file_name: str, known: dict):
        """Yield ``(image_id, where, ann)`` for annotations to join, RecordErrors for the rest."""
        for pos, ann in enumerate(annotations):
            where = f"{file_name} annotations[{pos}]"
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if image_id is None:
                yield dead(
                    "missing_key", f"{kind}-annotations[{pos}]", f"{where} has no 'image_id'"
                )
                continue
            if _is_int(image_id) and image_id in rejected:
                continue
            if not _is_int(image_id) or image_id not in known:
                ann_id = ann.get("id", f"[{pos}]")
                yield dead(
                    "unknown_image_id",
                    f"{kind}-{ann_id}",
                    f"{where}: image_id {image_id!r} is not in the images of {cap_name}",
                )
                continue
            if image_id not in problems:
                yield image_id, where, ann

    # Join captions (file order, all of them).
    caps: dict[int, list[dict[str, str]]] = {i: [] for i in order}
    for joined in joinable(captions["annotations"], "caption", cap_name, caps):
        if isinstance(joined, RecordError):
            yield joined
            continue
        image_id, where, ann = joined
        try:
            _require(ann, ["id", "caption"], where)
            if not isinstance(ann["caption"], str):
                raise RecordError("bad_value", f"{where}: caption is not a string")
        except RecordError as exc:
            problems[image_id] = exc
            continue
        caps[image_id].append({"id": str(ann["id"]), "text": ann["caption"]})

    # Join instances.
    insts: dict[int, list[dict[str, Any]]] = {i: [] for i in order}
    for joined in joinable(instances["annotations"], "instance", inst_name, insts):
        if isinstance(joined, RecordError):
            yield joined
            continue
        image_id, where, ann = joined
        try:
            insts[image_id].append(parse_instance(ann, categories, images[image_id], where))
        except RecordError as exc:
            problems[image_id] = exc

    for image_id in order:
        sid = str(image_id)
        if image_id in problems:
            exc = problems[image_id]
            yield dead(exc.reason, sid, exc.detail)
            continue
        if not caps[image_id]:
            yield dead("no_captions", sid, f"{cap_name}: image {image_id} has no caption")
            continue
        image = images[image_id]
        yield {
            "source": SOURCE,
            "source_id": sid,
            "split": split,
            # the full path, as the other readers give it; the build rewrites local paths
            # relative to the config's folder (pipelines.images.localize_paths)
            "source_file": captions_file,
            "instances_file": inst_name,
            "image": image,
            "captions": caps[image_id],
            "instances": insts[image_id],
        }
