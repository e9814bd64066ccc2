"""VIST (Visual Storytelling) parsing: pure functions, no Beam.

Input files (docs: ``sources/vist/README.md``):

* SIS ``<split>.story-in-sequence.json``: ONE JSON object with the lists ``albums``,
  ``images`` and ``annotations``; ``annotations`` is a list of 1-element lists (``[[{...}],
  ...]``), each element one *storylet* (one sentence for one photo). Unwrapped dicts are
  accepted too; extra top-level keys are ignored.
* DII ``<split>.description-in-isolation.json`` (optional): the same container, one caption
  per element, several captions per photo.

Read unit: one story (the storylets sharing a ``story_id`` inside one SIS file). A valid
story has exactly 5 storylets with ``worker_arranged_photo_order`` 0-4, 5 distinct photos and
one album; anything else is reported (``malformed_story``), never repaired. Stories become
items (plain dicts); :func:`restructure` turns an item into a draft SA / Literature record.
"""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

from schemas.errors import PipelineConfigError, RecordError, as_record_error
from schemas.fs import join, match, require_path, safe_name
from schemas.records import (
    ImageRefs,
    Record,
    make_id,
    new_record,
    provenance,
    seg,
)
from schemas.taxonomy import source_table
from sources.base import Item, source_options

SOURCE = "vist"
CATEGORY = "SA"
FIELD = "Literature"
STORY_LENGTH = 5
SIS_SUFFIX = ".story-in-sequence.json"
DII_SUFFIX = ".description-in-isolation.json"

DEFAULT_PROMPT = (
    "Continue the story: write the next parts of this photo story, each with a sentence and an "
    "image."
)
# MMIE Figure 1 shows 1 question segment and 3 answer segments, so the default keeps a story at
# 4 of its 5 photos; MMIE's scorer skips items with more than 4 images and reads an answer only
# until the third image (the release's mmie/scorer_limits.json lists such items as truncated).
DEFAULT_TEXT_FIELD = source_options("vist", {})["text_field"]
TEXT_FIELDS = ("original_text", "text")

LICENSE = (
    "VIST annotations: no explicit licence found (visionandlanguage.net/VIST; the paper and the "
    "vist_api loader state none). Images: Flickr photos, each under its own Flickr licence "
    "(see images[].license)."
)

# Keys every SIS storylet must carry (plus the configured text field).
REQUIRED_STORYLET_KEYS = ("story_id", "album_id", "photo_flickr_id", "worker_arranged_photo_order")
# Album and image fields copied into source_metadata when present.
ALBUM_KEEP = ("id", "title", "vist_label", "owner", "photos", "description")
IMAGE_KEEP = ("id", "title", "license", "datetaken", "url_o", "tags", "media")

UnitResult = tuple[str, "Item | RecordError"]


# ---------------------------------------------------------------------------------------------
# Files and containers
# ---------------------------------------------------------------------------------------------


def split_of(path: str) -> str:
    """The split of a VIST file: its file name up to the first ``.`` (``test`` for
    ``.../test.story-in-sequence.json``).

    Raises:
        RecordError(malformed_file): the name gives no usable split.
    """
    base = posixpath.basename(path.replace("\\", "/").rstrip("/"))
    split = base.split(".", 1)[0]
    try:
        return safe_name(split, "split")
    except RecordError as exc:
        raise RecordError("malformed_file", f"{path}: no split in the file name") from exc


def load_container(data: bytes, source_file: str, *, kind: str = "SIS") -> dict[str, Any]:
    """Decode one VIST JSON file and check its container shape.

    Args:
        data: the file's bytes.
        source_file: the file's path, named in every error.
        kind: ``"SIS"`` or ``"DII"`` (only used in messages).

    Returns:
        The decoded object (extra top-level keys are kept and ignored).

    Raises:
        RecordError(malformed_file): not UTF-8 JSON, not an object, or ``albums``, ``images``
        or ``annotations`` missing or not a list.
    """
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # Recursion: too deep
        raise RecordError("malformed_file", f"{source_file}: not valid {kind} JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecordError(
            "malformed_file",
            f"{source_file}: top level is {type(doc).__name__}, expected one JSON object",
        )
    for key in ("albums", "images", "annotations"):
        if key not in doc:
            raise RecordError("malformed_file", f"{source_file}: missing top-level key {key!r}")
        if not isinstance(doc[key], list):
            raise RecordError(
                "malformed_file",
                f"{source_file}: top-level {key!r} is {type(doc[key]).__name__}, expected a list",
            )
    return doc


def unwrap_annotation(raw: Any, pos: int, source_file: str) -> dict[str, Any]:
    """One annotation element: ``[{...}]`` (the published shape) or a bare ``{...}``.

    Raises:
        RecordError(malformed_annotation): anything else (empty list, 2 elements, a string...).
    """
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], dict):
        return raw[0]
    shape = f"list of {len(raw)}" if isinstance(raw, list) else type(raw).__name__
    raise RecordError(
        "malformed_annotation",
        f"{source_file}: annotations[{pos}] is a {shape}, expected [{{...}}] or {{...}}",
    )


def id_str(value: Any) -> str | None:
    """An id as a string (VIST ids are digit strings; ints are accepted and converted)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def index_by_id(entries: list[Any]) -> dict[str, dict[str, Any]]:
    """``albums`` or ``images`` keyed by string ``id`` (first one wins; bad entries skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, dict):
            key = id_str(entry.get("id"))
            if key is not None:
                out.setdefault(key, entry)
    return out


def group_annotations(annotations: list[Any], source_file: str) -> list[UnitResult]:
    """Group storylets by ``story_id``, in order of first appearance.

    Returns:
        ``(unit_id, entries | RecordError)`` pairs. ``entries`` is a list of
        ``(position, storylet)``. An element that cannot be assigned to a story (not an
        annotation, or without a usable ``story_id``) is its own unit with a RecordError,
        its unit id naming the position.
    """
    units: list[UnitResult] = []
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for pos, raw in enumerate(annotations):
        unit_id = f"{posixpath.basename(source_file)}#annotations[{pos}]"
        try:
            ann = unwrap_annotation(raw, pos, source_file)
        except RecordError as exc:
            units.append((unit_id, exc))
            continue
        if "story_id" not in ann:
            units.append(
                (
                    unit_id,
                    RecordError(
                        "missing_key", f"{source_file}: annotations[{pos}] has no 'story_id'"
                    ),
                )
            )
            continue
        story_id = id_str(ann["story_id"])
        if story_id is None:
            units.append(
                (
                    unit_id,
                    RecordError(
                        "malformed_annotation",
                        f"{source_file}: annotations[{pos}].story_id is {ann['story_id']!r}",
                    ),
                )
            )
            continue
        if story_id not in groups:
            groups[story_id] = []
            units.append((story_id, groups[story_id]))  # type: ignore[arg-type]
        groups[story_id].append((pos, ann))
    return units


def _order(value: Any) -> int | None:
    """``worker_arranged_photo_order`` as an int (a digit string is accepted)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _keep(entry: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {k: entry[k] for k in keys if k in entry}


def build_story(
    story_id: str,
    entries: list[tuple[int, dict[str, Any]]],
    *,
    split: str,
    source_file: str,
    albums: Mapping[str, dict[str, Any]],
    images: Mapping[str, dict[str, Any]],
    images_root: str,
    image_stems: Mapping[str, str],
    text_field: str = DEFAULT_TEXT_FIELD,
    dii: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Item:
    """Check one story and turn it into an item.

    Args:
        story_id: the story's id.
        entries: ``(position in annotations, storylet)`` pairs, in file order.
        split: the split (from the file name).
        source_file: the SIS file, named in errors.
        albums, images: ``albums`` / ``images`` of the file keyed by id.
        images_root: the folder holding ``<split>/<photo_flickr_id>.<ext>``.
        image_stems: file stem -> path of the files in ``<images_root>/<split>``.
        text_field: the storylet text key the record will use (must be present).
        dii: DII captions by photo id, or None when no DII file is configured.

    Returns:
        The item: ``source``, ``source_id``, ``split``, ``source_file``, ``album_id``,
        ``album`` (kept album fields or None), ``storylets`` (sorted by order; each with
        ``order``, ``photo_id``, ``storylet_id``, ``text``, ``original_text``, ``worker_id``,
        ``image_uri``, ``image_found``, ``image`` (kept image fields or None)), ``dii``.

    Raises:
        RecordError: ``missing_key`` (a required storylet key is absent), ``malformed_story``
        (not exactly 5 storylets, orders not 0-4, photos not distinct, several albums, a bad
        order value or a non-string text), ``path_escapes_root`` (a photo id that cannot be a
        file name).
    """
    where = f"{source_file}: story {story_id}"
    storylets: list[dict[str, Any]] = []
    for pos, ann in entries:
        for key in (*REQUIRED_STORYLET_KEYS, text_field):
            if key not in ann:
                raise RecordError("missing_key", f"{where}: annotations[{pos}] has no {key!r}")
        order = _order(ann["worker_arranged_photo_order"])
        if order is None:
            raise RecordError(
                "malformed_story",
                f"{where}: annotations[{pos}].worker_arranged_photo_order is "
                f"{ann['worker_arranged_photo_order']!r}, expected an integer 0-4",
            )
        photo_id = id_str(ann["photo_flickr_id"])
        album_id = id_str(ann["album_id"])
        if photo_id is None or album_id is None:
            raise RecordError(
                "malformed_story",
                f"{where}: annotations[{pos}] has an empty or non-string photo_flickr_id/album_id",
            )
        safe_name(photo_id, f"{where}: annotations[{pos}].photo_flickr_id")
        for key in TEXT_FIELDS:
            if key in ann and not isinstance(ann[key], str):
                raise RecordError(
                    "malformed_story",
                    f"{where}: annotations[{pos}].{key} is {type(ann[key]).__name__}, "
                    "expected a string",
                )
        storylets.append(
            {
                "order": order,
                "photo_id": photo_id,
                "album_id": album_id,
                "storylet_id": id_str(ann.get("storylet_id")),
                "text": ann.get("text"),
                "original_text": ann.get("original_text"),
                "worker_id": ann.get("worker_id"),
                "position": pos,
            }
        )

    problems = []
    if len(storylets) != STORY_LENGTH:
        problems.append(f"{len(storylets)} storylets, expected {STORY_LENGTH}")
    orders = sorted(s["order"] for s in storylets)
    if orders != list(range(STORY_LENGTH)):
        problems.append(f"orders {orders}, expected {list(range(STORY_LENGTH))}")
    photos = [s["photo_id"] for s in storylets]
    if len(set(photos)) != len(photos):
        problems.append(f"repeated photos {photos}")
    album_ids = sorted({s["album_id"] for s in storylets})
    if len(album_ids) != 1:
        problems.append(f"albums {album_ids}, expected one")
    if problems:
        raise RecordError("malformed_story", f"{where}: " + "; ".join(problems))

    storylets.sort(key=lambda s: s["order"])
    folder = join(images_root, split)
    for s in storylets:
        found = image_stems.get(s["photo_id"])
        s["image_uri"] = found or join(folder, f"{s['photo_id']}.jpg")
        s["image_found"] = found is not None
        s["image"] = _keep(images.get(s["photo_id"]), IMAGE_KEEP)
        del s["album_id"]
    album_id = album_ids[0]
    return {
        "source": SOURCE,
        "source_id": story_id,
        "split": split,
        "source_file": source_file,
        "album_id": album_id,
        "album": _keep(albums.get(album_id), ALBUM_KEEP),
        "storylets": storylets,
        "dii": None if dii is None else {p: list(dii.get(p, [])) for p in photos},
    }


def iter_sis_units(
    doc: dict[str, Any],
    *,
    split: str,
    source_file: str,
    images_root: str,
    image_stems: Mapping[str, str],
    text_field: str = DEFAULT_TEXT_FIELD,
    dii: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Iterator[Item | RecordError]:
    """Every read unit of one decoded SIS file: its item, or a RecordError whose
    ``source_id`` is the unit id (``sources.base``'s protocol).

    One unit per story, plus one per annotation element that belongs to no story.
    """
    albums = index_by_id(doc["albums"])
    images = index_by_id(doc["images"])
    for unit_id, entries in group_annotations(doc["annotations"], source_file):
        if isinstance(entries, RecordError):
            yield as_record_error(entries, unit_id)
            continue
        try:
            yield build_story(
                unit_id,
                entries,  # type: ignore[arg-type]
                split=split,
                source_file=source_file,
                albums=albums,
                images=images,
                images_root=images_root,
                image_stems=image_stems,
                text_field=text_field,
                dii=dii,
            )
        except Exception as exc:  # a bug too: report it on this story, keep reading the file
            yield as_record_error(exc, unit_id)


def parse_dii(doc: dict[str, Any], source_file: str) -> dict[str, list[dict[str, Any]]]:
    """DII captions grouped by photo id, in file order within a photo.

    Each caption keeps ``text``, ``original_text``, ``photo_order_in_story`` and
    ``storylet_id`` when present (several captions per photo, typically 3).

    Raises:
        RecordError(malformed_file): an element is not an annotation (see
        :func:`unwrap_annotation`) or has no ``photo_flickr_id``. DII only adds metadata, but
        a broken DII file is reported loudly rather than silently ignored.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for pos, raw in enumerate(doc["annotations"]):
        try:
            ann = unwrap_annotation(raw, pos, source_file)
        except RecordError as exc:
            raise RecordError("malformed_file", exc.detail) from exc
        photo_id = id_str(ann.get("photo_flickr_id"))
        if photo_id is None:
            raise RecordError(
                "malformed_file", f"{source_file}: annotations[{pos}] has no photo_flickr_id"
            )
        caption = {
            k: ann[k]
            for k in ("text", "original_text", "photo_order_in_story", "storylet_id")
            if k in ann
        }
        out.setdefault(photo_id, []).append(caption)
    return out


# ---------------------------------------------------------------------------------------------
# Mapping tables
# ---------------------------------------------------------------------------------------------


def normalise_label(label: Any) -> str:
    """``"Birthday Party"`` -> ``"birthday_party"``; non-strings -> ``""``."""
    if not isinstance(label, str):
        return ""
    return "_".join(label.strip().lower().replace("-", " ").split())


@functools.cache
def _tables() -> dict[str, Any]:
    return source_table(SOURCE)


def subfield_for(label: Any) -> tuple[str, str]:
    """(subfield, rule) for an album's ``vist_label``; rule is ``label``, ``keyword`` or
    ``default`` (unknown or missing label -> Everyday Life)."""
    table = _tables()["vist_label"]
    norm = normalise_label(label)
    if norm and norm in table["labels"]:
        return table["labels"][norm]["subfield"], "label"
    if norm:
        for rule in table["keywords"]:
            if rule["contains"] in norm:
                return rule["subfield"], "keyword"
    return table["default"]["subfield"], "default"


def license_name(code: Any) -> str | None:
    """A Flickr licence id (``"1"``) -> ``"flickr:1 CC BY-NC-SA 2.0"``; None when absent."""
    key = id_str(code)
    if key is None:
        return None
    entry = _tables()["flickr_licenses"].get(key)
    if entry is None:
        return f"flickr:{key} (unknown Flickr licence id)"
    return f"flickr:{key} {entry['name']}"


# ---------------------------------------------------------------------------------------------
# Restructuring and options
# ---------------------------------------------------------------------------------------------


def restructure(item: Item, options: dict[str, Any]) -> Record:
    """One VIST story -> a draft SA / Literature record.

    Question: the ``prompt`` text segment (unless null or empty) and the first ``k`` story
    segments (sentence + photo); answer: the following segments in order, at most
    ``answer_segments`` of them; ``gt_answer`` is MMIE's null answer.

    Args:
        item: a story item from :func:`build_story`.
        options: the ``sources.vist`` config block (``question_segments``,
            ``answer_segments`` (cap; null keeps the whole story), ``text_field``, ``prompt``).

    Raises:
        RecordError: ``missing_key`` (the item lacks the configured text field),
        ``empty_text`` (a storylet's sentence is empty or blank; MMIE drops these).
    """
    options = source_options(SOURCE, options)
    k = int(options["question_segments"])
    text_field = options["text_field"]
    # absent: the standard continuation prompt; null: none (not a schema default: code text)
    prompt = options.get("prompt", DEFAULT_PROMPT)
    story_id = item["source_id"]
    storylets = item["storylets"]
    if not 1 <= k < len(storylets):
        raise ValueError(f"question_segments={k} must be between 1 and {len(storylets) - 1}")

    n_answer = options["answer_segments"]
    kept = storylets[: k + n_answer] if n_answer is not None else storylets

    refs = ImageRefs()
    segments = []
    for s in kept:
        text = s.get(text_field)
        if text is None:
            raise RecordError(
                "missing_key",
                f"{item['source_file']}: story {story_id} order {s['order']} has no {text_field!r}",
            )
        if not text.strip():
            raise RecordError(
                "empty_text",
                f"{item['source_file']}: story {story_id} order {s['order']} "
                f"(photo {s['photo_id']}) has an empty {text_field}",
            )
        image = s.get("image") or {}
        ref = refs.add(
            s["image_uri"],
            license=license_name(image.get("license")),
            root=options.get("images"),
            source_uri=image.get("url_o"),  # the Flickr original, where the SIS file gives it
        )
        segments.append(seg(text, ref))

    question = ([seg(prompt)] if prompt else []) + segments[:k]
    answer = segments[k:]
    album = item.get("album") or {}
    label = album.get("vist_label")
    subfield, rule = subfield_for(label)
    metadata: dict[str, Any] = {
        "story_id": story_id,
        "album_id": item["album_id"],
        "album_title": album.get("title"),
        "vist_label": label,
        "subfield_rule": rule,
        "album": item.get("album"),
        "text_field": text_field,
        "question_segments": k,
        "answer_segments": len(kept) - k,
        "storylets_dropped": len(storylets) - len(kept),
        "prompt": prompt or None,
        "storylets": [
            {
                "order": s["order"],
                "storylet_id": s.get("storylet_id"),
                "photo_flickr_id": s["photo_id"],
                "text": s.get("text"),
                "original_text": s.get("original_text"),
                "worker_id": s.get("worker_id"),
                "image_found": s["image_found"],
                "image_license_code": (s.get("image") or {}).get("license"),
                "image": s.get("image"),
            }
            for s in storylets
        ],
        "photo_ids": [s["photo_id"] for s in storylets],
    }
    if item.get("dii") is not None:
        metadata["dii_captions"] = item["dii"]
    return new_record(
        record_id=make_id(CATEGORY, SOURCE, item["split"], story_id),
        category=CATEGORY,
        field=FIELD,
        subfield=subfield,
        question=question,
        answer=answer,
        images=refs,
        provenance=provenance(SOURCE, item["split"], story_id, LICENSE, item["source_file"]),
        source_metadata=metadata,
    )


def check_options(options: dict[str, Any]) -> None:
    """Fail before launch on a bad ``sources.vist`` block.

    Raises:
        PipelineConfigError: ``sis`` or ``images`` missing or not found; ``dii`` set but not
        found; a SIS or DII file whose name gives no split; ``question_segments`` not 1-4;
        ``text_field`` not ``original_text`` / ``text``.
    """
    for key in ("sis", "images"):
        require_path(options, key, SOURCE)
    if options.get("dii"):
        require_path(options, "dii", SOURCE)
    options = source_options(SOURCE, options)
    k = options["question_segments"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= STORY_LENGTH - 1:
        raise PipelineConfigError(
            f"sources.vist.question_segments is {k!r}; use an integer from 1 to 4 (a story "
            "has 5 segments and the answer needs at least one)"
        )
    if options["text_field"] not in TEXT_FIELDS:
        raise PipelineConfigError(
            f"sources.vist.text_field is {options.get('text_field')!r}; use one of {TEXT_FIELDS}"
        )
    for key in ("sis", "dii"):
        if not options.get(key):
            continue
        for path in match(options[key]):
            try:
                split_of(path)
            except RecordError as exc:
                raise PipelineConfigError(
                    f"sources.vist.{key}: {exc.detail}; name files <split>"
                    f"{SIS_SUFFIX if key == 'sis' else DII_SUFFIX}"
                ) from exc
