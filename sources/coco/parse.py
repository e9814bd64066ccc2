"""COCO 2017 captions + instances -> MIA-Bench-style instruction-following (IF) records.

Pure functions, no Beam. Two halves:

* **Reading** (:func:`iter_units`): one captions file and its instances file, both parsed
  once, become one *item* per image of the captions file's ``images`` list, with the image's
  captions (all, file order, raw text) and a summary of its instance annotations (ids as
  strings, segmentation kind and shape checked, the big mask arrays not carried). Every
  other unit (an annotation whose ``image_id`` matches no image, or that has no
  ``image_id``) and every image that cannot be used becomes a read dead letter instead.
* **Restructuring** (:func:`restructure`): one item becomes one IF draft record whose
  instruction is a layered instruction of 2-5 MIA-Bench components (``describe`` first),
  chosen deterministically from the option ``seed`` and the image id, built from the
  image's own captions and instances so that every component is answerable and checkable.

Reasons (dead letters), all stable snake_case:

* read, file-level: ``bad_json`` (captions file unreadable or not JSON), ``missing_key``
  (the captions file has no ``images`` list);
* read, per image: ``missing_key``, ``bad_value``, ``path_escapes_root``,
  ``duplicate_image_id``, ``unknown_license``, ``no_captions``, ``unknown_category``,
  ``bad_segmentation``, ``bad_instances_file``;
* read, per orphan annotation: ``unknown_image_id``, ``missing_key``;
* restructure: ``not_enough_facts`` (fewer usable component types than ``min_components``),
  ``unmapped_supercategory`` (a supercategory missing from ``fields.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

from schemas.deadletter import STAGE_READ, dead_letter
from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import join, read_bytes, require_path, resolve_under, safe_name
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.taxonomy import source_table
from sources.base import Item

SOURCE = "coco"
SPLITS = ("train", "val")
LICENSE = "CC BY 4.0 (COCO annotations); images: Flickr, per-image licence"

# Weight patterns (MIA-Bench's common ones; 5 components share the 10 points equally).
WEIGHTS: dict[int, list[int]] = {2: [6, 4], 3: [4, 3, 3], 4: [4, 2, 2, 2], 5: [2, 2, 2, 2, 2]}
# How often each component count is drawn (MIA-Bench: 204 / 155 / 40 / 1 of 400 items;
# 5 is raised to 3 so that the largest layered instructions occur at all).
COUNT_WEIGHTS: dict[int, int] = {2: 50, 3: 35, 4: 12, 5: 3}
# Relative frequency of the non-describe component types (MIA-Bench occurrences, rounded;
# math and perspective are raised a little because COCO supports them well).
TYPE_WEIGHTS: dict[str, int] = {
    "mention": 22,
    "length_limit": 21,
    "linguistics": 14,
    "grammar": 8,
    "math": 6,
    "perspective": 4,
}
# Order of the components after ``describe`` in the instruction.
TYPE_ORDER = ("perspective", "length_limit", "mention", "math", "grammar", "linguistics")
PERSONA_SUPERCATEGORIES = ("person", "animal")
MAX_COUNT = 10

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
_PLURALS = {
    "person": "people",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "pairs of skis",
    "scissors": "pairs of scissors",
    "knife": "knives",
    "broccoli": "pieces of broccoli",
}
_DESCRIBE = (
    "Describe the scene in this image",
    "Explain what is happening in this picture",
    "Describe what you see in this photo",
    "Narrate the moment captured in this image",
)
_GRAMMAR = {
    "present_tense": ("Write in the present tense", "is written in the present tense"),
    "past_tense": (
        "Write in the past tense",
        "is written in the past tense",
    ),
    "passive_voice": (
        "Use the passive voice in at least one sentence",
        "has at least one sentence in the passive voice",
    ),
    "first_person": (
        "Write in the first person as an onlooker at the scene",
        "is written in the first person",
    ),
}
_LINGUISTICS = {
    "simile": ("Include exactly one simile", {"device": "simile", "count": 1}),
    "metaphor": ("Include one metaphor", {"device": "metaphor", "count": 1}),
    "rhetorical_question": (
        "End with a rhetorical question",
        {"device": "rhetorical_question", "position": "end"},
    ),
    "poem": ("Write the answer as a four-line poem", {"form": "poem", "lines": 4}),
}
_LINGUISTICS_CHECK = {
    "simile": "contains exactly one simile",
    "metaphor": "contains a metaphor",
    "rhetorical_question": "ends with a rhetorical question",
    "poem": "is a poem of exactly four lines",
}


# --------------------------------------------------------------------------------------
# Options and paths
# --------------------------------------------------------------------------------------


def paths(options: dict[str, Any]) -> dict[str, str]:
    """The captions file, instances file and images folder the options point at."""
    split = options.get("split", "val")
    root = options.get("root") or ""
    return {
        "captions": options.get("captions")
        or join(root, "annotations", f"captions_{split}2017.json"),
        "instances": options.get("instances")
        or join(root, "annotations", f"instances_{split}2017.json"),
        "images": options.get("images") or join(root, f"{split}2017"),
    }


def check_options(options: dict[str, Any]) -> None:
    """Config check before launch.

    Raises:
        PipelineConfigError: ``root`` unset, a derived or overridden path missing, an
        unknown split, or ``min_components`` > ``max_components``.
    """
    split = options.get("split", "val")
    if split not in SPLITS:
        raise PipelineConfigError(f"sources.coco.split must be one of {SPLITS}, not {split!r}")
    require_path(options, "root", SOURCE)
    for key, value in paths(options).items():
        require_path({key: value}, key, SOURCE)
    lo, hi = _component_range(options)
    if lo > hi:
        raise PipelineConfigError(
            f"sources.coco.min_components ({lo}) is larger than max_components ({hi})"
        )


def _component_range(options: dict[str, Any]) -> tuple[int, int]:
    lo = int(options.get("min_components", 2))
    hi = int(options.get("max_components", 5))
    if not (2 <= lo <= 5 and 2 <= hi <= 5):
        raise PipelineConfigError(
            f"sources.coco.min_components/max_components must be within 2-5; got {lo}, {hi}"
        )
    return lo, hi


def relative_name(path: str, root: str | None) -> str:
    """``path`` relative to ``root`` when it lies under it, else its base name.

    Provenance then names ``annotations/captions_val2017.json`` rather than a machine's
    absolute path.
    """
    if root:
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix) :]
    return posixpath.basename(path.rstrip("/"))


def load_json(uri: str, what: str) -> Any:
    """Read and parse one COCO JSON file (each is one object).

    Raises:
        RecordError(bad_json): the file cannot be read or is not JSON.
    """
    try:
        return json.loads(read_bytes(uri))
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
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Join one captions file with its instances file; yield ``("item", item)`` or
    ``("dead", dead_letter)`` once per read unit.

    Units: every entry of the captions file's ``images`` list (-> an item or a dead
    letter), every caption or instance annotation whose ``image_id`` is missing or matches
    no image (-> a dead letter each). If the captions file has no ``images`` list there are
    no units to enumerate and the file itself is one dead letter.

    Args:
        captions: the parsed captions file (one JSON object).
        instances: the parsed instances file, or None when it could not be read.
        options: the source options (``root``, ``split``, ``images`` ...).
        captions_file / instances_file: the files' URIs (named in details and provenance).
        instances_error: why ``instances`` is None; every image then becomes a
            ``bad_instances_file`` dead letter.
    """
    split = options.get("split", "val")
    root = options.get("root")
    images_dir = paths(options)["images"]
    cap_name = relative_name(captions_file, root)
    inst_name = relative_name(instances_file, root)

    def dead(reason: str, source_id: str, detail: str) -> tuple[str, dict[str, Any]]:
        return "dead", dead_letter(STAGE_READ, reason, SOURCE, source_id, detail)

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
        """Yield ``(image_id, where, ann)`` for annotations to join, dead letters for the rest."""
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
        if joined[0] == "dead":
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
        if joined[0] == "dead":
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
        yield (
            "item",
            {
                "source": SOURCE,
                "source_id": sid,
                "split": split,
                # the full path, as the other readers give it; the build rewrites local paths
                # relative to the config's folder (pipelines.transforms.images.localize_paths)
                "source_file": captions_file,
                "instances_file": inst_name,
                "image": image,
                "captions": caps[image_id],
                "instances": insts[image_id],
            },
        )


# --------------------------------------------------------------------------------------
# Restructuring: facts, deterministic choices, the layered instruction
# --------------------------------------------------------------------------------------


class Chooser:
    """Deterministic choices from sha256 of ``(seed, image id, label)``; no global RNG and
    no ``hash()``, so results are the same on every machine and Python version."""

    def __init__(self, seed: int, image_id: str) -> None:
        self._key = f"coco|{seed}|{image_id}"

    def _int(self, label: str) -> int:
        digest = hashlib.sha256(f"{self._key}|{label}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def unit(self, label: str) -> float:
        """A number in (0, 1)."""
        return (self._int(label) + 0.5) / 2**64

    def choice(self, label: str, seq: Sequence[Any]) -> Any:
        return seq[self._int(label) % len(seq)]

    def weighted(self, label: str, weights: dict[Any, int]) -> Any:
        total = sum(weights.values())
        point = self._int(label) % total
        for value, weight in weights.items():
            if point < weight:
                return value
            point -= weight
        raise AssertionError("unreachable")

    def sample(self, label: str, weights: dict[str, int], k: int) -> list[str]:
        """``k`` distinct keys, weighted, without replacement (Efraimidis-Spirakis)."""
        keyed = sorted(
            weights, key=lambda v: self.unit(f"{label}|{v}") ** (1.0 / weights[v]), reverse=True
        )
        return keyed[:k]


def plural(name: str) -> str:
    """English plural of a COCO category name (irregular ones from a table)."""
    if name in _PLURALS:
        return _PLURALS[name]
    if name.endswith(("s", "sh", "ch", "x")):
        return name + "es"
    return name + "s"


def the_object(name: str, count: int) -> str:
    return f"the {name}" if count == 1 else f"the {plural(name)}"


def category_stats(instances: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """category name -> {category_id, supercategory, count, crowd, area}, sorted by name."""
    stats: dict[str, dict[str, Any]] = {}
    for inst in instances:
        s = stats.setdefault(
            inst["category"],
            {
                "category_id": inst["category_id"],
                "supercategory": inst["supercategory"],
                "count": 0,
                "crowd": 0,
                "area": 0.0,
            },
        )
        if inst["iscrowd"]:
            s["crowd"] += 1
        else:
            s["count"] += 1
        s["area"] += float(inst["area"])
    return dict(sorted(stats.items()))


def dominant_supercategory(instances: list[dict[str, Any]]) -> str | None:
    """The supercategory with the largest total instance area (crowd regions included);
    ties go to the alphabetically first name. None when the image has no instances."""
    area: dict[str, float] = {}
    for inst in instances:
        area[inst["supercategory"]] = area.get(inst["supercategory"], 0.0) + float(inst["area"])
    if not area:
        return None
    return min(area, key=lambda sc: (-area[sc], sc))


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


def _available_types(stats: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Component type -> the categories it can use (empty list: needs no category)."""
    mentionable = [n for n, s in stats.items() if s["count"] >= 1]
    countable = [n for n, s in stats.items() if s["crowd"] == 0 and 1 <= s["count"] <= MAX_COUNT]
    personas = [
        n
        for n, s in stats.items()
        if s["supercategory"] in PERSONA_SUPERCATEGORIES and s["count"] >= 1
    ]
    out: dict[str, list[str]] = {"length_limit": [], "grammar": [], "linguistics": []}
    if mentionable:
        out["mention"] = mentionable
    if countable:
        out["math"] = countable
    if personas:
        out["perspective"] = personas
    return out


def _component(text: str, ctype: str, facts: dict[str, Any]) -> dict[str, Any]:
    return {"text": text, "type": ctype, "weight": 0, "facts": facts}


def build_components(item: Item, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The layered instruction's components, ``describe`` first, weights summing to 10.

    Raises:
        RecordError(not_enough_facts): the image supports fewer component types than
        ``min_components`` (e.g. 5 asked of an image without instance annotations).
    """
    lo, hi = _component_range(options)
    pick = Chooser(int(options.get("seed", 0)), item["source_id"])
    stats = category_stats(item["instances"])
    available = _available_types(stats)
    most = min(hi, 1 + len(available))
    if most < lo:
        raise RecordError(
            "not_enough_facts",
            f"image {item['source_id']} supports {1 + len(available)} component types "
            f"({', '.join(['describe', *sorted(available)])}); min_components is {lo}",
        )
    n = pick.weighted("n", {k: w for k, w in COUNT_WEIGHTS.items() if lo <= k <= most})
    chosen = set(pick.sample("types", {t: TYPE_WEIGHTS[t] for t in available}, n - 1))

    captions = item["captions"]
    comps = [
        _component(
            pick.choice("describe", _DESCRIBE),
            "describe",
            {"captions": [c["text"] for c in captions], "caption_ids": [c["id"] for c in captions]},
        )
    ]
    used: set[str] = set()
    exact_sentences = False
    for ctype in TYPE_ORDER:
        if ctype not in chosen:
            continue
        if ctype == "perspective":
            name = pick.choice("persona", available["perspective"])
            s = stats[name]
            who = f"the {name}" if s["count"] == 1 else f"one of the {plural(name)}"
            comps.append(
                _component(
                    f"Answer as if you were {who} in the picture",
                    ctype,
                    {"role": name, "supercategory": s["supercategory"], "count": s["count"]},
                )
            )
        elif ctype == "length_limit":
            if pick.unit("length") < 0.5:
                k = pick.choice("sentences", (2, 3, 4))
                exact_sentences = True
                comps.append(
                    _component(
                        f"Use exactly {_NUMBER_WORDS[k]} sentences",
                        ctype,
                        {"unit": "sentences", "exact": k},
                    )
                )
            else:
                w = pick.choice("words", (40, 50, 60, 80))
                comps.append(
                    _component(f"Use at most {w} words", ctype, {"unit": "words", "max": w})
                )
        elif ctype == "mention":
            names = available["mention"]
            if len(names) >= 2 and pick.unit("mention-two") < 0.35:
                a, b = pick.sample("mention-pair", dict.fromkeys(names, 1), 2)
                pair = sorted([a, b])
                first, second = (the_object(x, stats[x]["count"]) for x in pair)
                text = f"Mention both {first} and {second}"
                picked = pair
            else:
                name = pick.choice("mention-one", names)
                text = f"Mention {the_object(name, stats[name]['count'])}"
                picked = [name]
            used.update(picked)
            counts = [stats[x]["count"] for x in picked]
            comps.append(_component(text, ctype, {"categories": picked, "counts": counts}))
        elif ctype == "math":
            names = [x for x in available["math"] if x not in used] or available["math"]
            name = pick.choice("count", names)
            used.add(name)
            count = stats[name]["count"]
            comps.append(
                _component(
                    f"State how many {plural(name)} there are in the image",
                    ctype,
                    {
                        "category": name,
                        "category_id": stats[name]["category_id"],
                        "count": count,
                    },
                )
            )
        elif ctype == "grammar":
            rules = [r for r in _GRAMMAR if not (r == "first_person" and "perspective" in chosen)]
            rule = pick.choice("grammar", rules)
            comps.append(_component(_GRAMMAR[rule][0], ctype, {"rule": rule}))
        elif ctype == "linguistics":
            kinds = [k for k in _LINGUISTICS if not (k == "poem" and exact_sentences)]
            kind = pick.choice("linguistics", kinds)
            text, facts = _LINGUISTICS[kind]
            comps.append(_component(text, ctype, dict(facts)))
    for comp, weight in zip(comps, WEIGHTS[len(comps)]):
        comp["weight"] = weight
    return comps


def complexity(components: list[dict[str, Any]]) -> str:
    """The complexity level, by the written definition in sources/coco/README.md:

    * ``creative``: a ``perspective`` component or a poem form (the answer must change
      voice or form, not just obey a constraint);
    * ``complex``: otherwise, 4 or 5 components;
    * ``advanced``: otherwise, 3 components including a ``grammar`` or ``linguistics`` one;
    * ``intermediate``: otherwise, 3 components, or 2 whose second is ``grammar``,
      ``linguistics`` or ``math``;
    * ``basic``: 2 components whose second is ``length_limit`` or ``mention``.
    """
    types = [c["type"] for c in components]
    if "perspective" in types or any(c["facts"].get("form") == "poem" for c in components):
        return "creative"
    if len(types) >= 4:
        return "complex"
    stylistic = {"grammar", "linguistics"} & set(types)
    if len(types) == 3:
        return "advanced" if stylistic else "intermediate"
    return "basic" if types[1] in ("length_limit", "mention") else "intermediate"


def instruction_text(components: list[dict[str, Any]]) -> str:
    """Join the components: the description as one sentence, the constraints as a second
    (``"Describe ... . Use exactly two sentences, mention the dog and write in the present
    tense."``)."""
    first, rest = components[0]["text"], [c["text"] for c in components[1:]]
    rest = [r[0].lower() + r[1:] for r in rest]
    rest[0] = rest[0][0].upper() + rest[0][1:]
    tail = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
    return f"{first}. {tail}."


def _check_line(comp: dict[str, Any]) -> str:
    f, t = comp["facts"], comp["type"]
    if t == "describe":
        return "the description agrees with the captions above"
    if t == "length_limit":
        if f["unit"] == "sentences":
            return f"the answer has exactly {_NUMBER_WORDS[f['exact']]} sentences"
        return f"the answer has at most {f['max']} words"
    if t == "mention":
        named = (the_object(n, c) for n, c in zip(f["categories"], f["counts"]))
        return "the answer names " + " and ".join(named)
    if t == "math":
        n, c = f["count"], f["category"]
        return f"the answer says there {'is' if n == 1 else 'are'} {n} {c if n == 1 else plural(c)}"
    if t == "grammar":
        return "the answer " + _GRAMMAR[f["rule"]][1]
    if t == "linguistics":
        kind = f.get("form") or f["device"]
        return "the answer " + _LINGUISTICS_CHECK[kind]
    if t == "perspective":
        return f'the answer speaks as the {f["role"]} in the first person ("I")'
    raise ValueError(f"unknown component type {t}")


def reference_text(item: Item, components: list[dict[str, Any]]) -> str:
    """The readable reference: the facts every component is checked against."""
    lines = [
        f"Reference facts from the COCO 2017 annotations of image {item['source_id']}.",
        "Captions (verbatim):",
    ]
    lines += [f"- {c['text']}" for c in item["captions"]]
    stats = category_stats(item["instances"])
    if stats:
        parts = []
        for name, s in stats.items():
            part = f"{name} x{s['count']}"
            if s["crowd"]:
                part += f" (+{s['crowd']} crowd region{'s' if s['crowd'] > 1 else ''})"
            parts.append(part)
        lines.append("Annotated objects: " + ", ".join(parts) + ".")
    else:
        lines.append("Annotated objects: none (no instance annotations for this image).")
    lines.append("Checks:")
    for i, comp in enumerate(components, 1):
        lines.append(f"{i}. {comp['type']} ({comp['weight']}/10): {_check_line(comp)}.")
    return "\n".join(lines)


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
    ref = refs.add(image["uri"], license=image["license_name"])
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
            "seed": int(options.get("seed", 0)),
        },
    )
