"""Building blocks for mmloom records (the shape in ``record.schema.json``).

Records are plain dicts so that they pickle cheaply between Beam stages and serialise to
JSON unchanged. A reader's ``restructure`` function returns a *draft* record: its images
are references that ``LoadImages`` later turns into content-addressed files. In a draft:

* ``images`` is a list of ``{"ref": "@0", "uri": ..., "bytes": b"..." | None, "license": ...}``;
* a segment's ``image`` is the ref string (``"@0"``).

After ``LoadImages`` every image entry has ``path`` (``images/<sha256>.<ext>``, the file in
the build's image store), ``sha256``, ``width``, ``height``, ``format``, ``source_uri``,
``license`` and ``phash``; segments point at ``path``. A finished record carries no image
bytes: the pixels live in the store (``schemas.store``). :func:`json_view` drops any
stray ``bytes`` key, giving the JSON that validates.

The types :class:`DraftRecord` and :class:`Record` (and ``schemas.deadletter.DeadLetter``)
name these shapes in the stages' signatures; at runtime they are plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NotRequired, TypedDict

from schemas import SCHEMA_VERSION

# Types of the stage boundaries. They are TypedDicts: records stay plain dicts at runtime (cheap
# to pickle, JSON as they are); the types say what a stage takes and gives.


class Segment(TypedDict):
    """One interleaved segment: text, image (a draft ref or a store path), or both."""

    text: str | None
    image: str | None


class DraftImage(TypedDict):
    """An image of a draft record, before ``LoadImages``: a ref and where to get the bytes."""

    ref: str
    uri: str
    bytes: bytes | None
    license: str | None
    # the source folder ``uri`` must stay in (symlinks included), also what dead letters name
    # it relative to; None for embedded bytes and for URIs with no folder of their own
    root: NotRequired[str | None]
    # the image's address as the source publishes it (COCO's coco_url, VIST's url_o,
    # wikiHow's img): the record's ``source_uri``. Absent or None: the reader names the file
    # relative to its source's configured paths (``sources.base.source_relative``).
    source_uri: NotRequired[str | None]


class RecordImage(TypedDict):
    """An image of a finished record: the file in the build's image store and its metadata."""

    path: str
    sha256: str
    width: int
    height: int
    format: str
    source_uri: str
    license: str | None
    phash: str | None


class Provenance(TypedDict):
    source: str
    split: str
    source_id: str
    license: str
    source_file: str


class _RecordFields(TypedDict):
    """The keys every record has, draft or finished (``record.schema.json``), but images."""

    schema_version: str
    id: str
    category: str
    field: str
    subfield: str
    question_format: str
    question: list[Segment]
    answer: list[Segment]
    model: str
    gt_answer: list[Segment]
    options: list[dict[str, str]] | None
    answer_type: str | None
    unit: str | None
    precision: int | None
    answer_value: Any
    instruction: dict[str, Any] | None
    provenance: Provenance
    source_metadata: dict[str, Any]
    scores: dict[str, Any]
    audit: dict[str, Any] | None


class DraftRecord(_RecordFields):
    """What a source's ``restructure`` gives and ``LoadImages`` takes: images are refs
    (``@0``...) to a URI or embedded bytes; segments name the refs."""

    images: list[DraftImage]


class Record(_RecordFields):
    """A finished record, from ``LoadImages`` on: images are ``images/<sha256>.<ext>`` files
    in the build's image store with their metadata, no bytes; segments name the paths."""

    images: list[RecordImage]


CATEGORIES = ("SA", "PBL", "MSR", "IF")
FIELDS = (
    "Mathematics",
    "Physics",
    "Coding",
    "Statistics",
    "Literature",
    "Philosophy",
    "Education",
    "Finance",
    "Health",
    "Sports",
    "Art",
    "EECS",
)
IF_COMPONENT_TYPES = (
    "describe",
    "length_limit",
    "mention",
    "linguistics",
    "grammar",
    "math",
    "perspective",
    "textual",
)
NULL_GT_ANSWER: list[dict[str, None]] = [{"text": None, "image": None}]

_ID_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
ID_HASH_CHARS = 10  # hex digits of the raw parts' sha256 appended to an id sanitising changed


def _clean_part(part: str, several: bool) -> bool:
    """True when ``part`` goes into an id unchanged and cannot be confused with another."""
    if not part or "--" in part or (several and "_" in part):
        return False
    return _ID_UNSAFE.sub("-", part.lower()).strip("-_.") == part


def make_id(category: str, source: str, *parts: object) -> str:
    """Deterministic id ``<CAT>_<source>_<parts...>``, safe for MMIE's substring router.

    Everything after the category token is lower-cased and reduced to ``[a-z0-9_.-]``, so
    the upper-case tokens SA, PBL, MSR and IF can occur only once, at the start.

    Ids are injective: distinct parts never share an id. Parts already in that form (every
    real id: ``MSR_mathvista_1``, ``SA_vist_test_45530``, ``PBL_wikihow_10000798_0``) are
    used as they are. When sanitising would change a part (``"A1"`` and ``"a1"``, split
    ``"Foo Bar"`` and ``"foo-bar"``), or a part holds the ``_`` separator next to other parts,
    or ``--``, the id gets ``--`` and 10 hex digits of the sha256 of the raw parts appended
    (``MSR_mathvista_a1--3b1c...``). Only such ids contain ``--``, so they cannot meet a clean
    one, and the suffix is lower-case hex, safe for the router.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    raw = [str(p) for p in (source, *parts)]
    rest = _ID_UNSAFE.sub("-", "_".join(raw).lower()).strip("-_.")
    if not all(_clean_part(p, len(parts) > 1) for p in raw[1:]):
        digest = hashlib.sha256(json.dumps(raw, ensure_ascii=False).encode()).hexdigest()
        rest = f"{rest}--{digest[:ID_HASH_CHARS]}"
    return f"{category}_{rest}"


def seg(text: str | None = None, image: str | None = None) -> dict[str, str | None]:
    """One interleaved segment; at least one of ``text`` and ``image`` is set."""
    if text is None and image is None:
        raise ValueError("a segment needs text, an image, or both")
    return {"text": text, "image": image}


class ImageRefs:
    """Collects the images a draft record uses and hands out their refs (``@0``, ``@1``...).

    The same ``uri`` added twice gets the same ref, so a record lists each image once.
    """

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._by_uri: dict[str, str] = {}

    def add(
        self,
        uri: str,
        data: bytes | None = None,
        license: str | None = None,
        root: str | None = None,
        source_uri: str | None = None,
    ) -> str:
        """The ref of image ``uri`` (embedded ``data``, or read from ``uri`` under ``root``,
        the source folder it must not leave); ``source_uri`` is the address the source
        publishes for it, recorded instead of ``uri`` when it is an http(s) URL (anything
        else, an empty string included, counts as none)."""
        if uri in self._by_uri:
            return self._by_uri[uri]
        ref = f"@{len(self._entries)}"
        entry = {"ref": ref, "uri": uri, "bytes": data, "license": license, "root": root}
        if isinstance(source_uri, str) and source_uri.startswith(("http://", "https://")):
            entry["source_uri"] = source_uri
        self._entries.append(entry)
        self._by_uri[uri] = ref
        return ref

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)


def new_record(
    *,
    record_id: str,
    category: str,
    field: str,
    subfield: str,
    question: list[dict[str, Any]],
    answer: list[dict[str, Any]],
    images: ImageRefs | list[dict[str, Any]],
    provenance: dict[str, str],
    source_metadata: dict[str, Any] | None = None,
    gt_answer: list[dict[str, Any]] | None = None,
    question_format: str = "open_ended",
    options: list[dict[str, str]] | None = None,
    answer_type: str | None = None,
    unit: str | None = None,
    precision: int | None = None,
    answer_value: Any = None,
    instruction: dict[str, Any] | None = None,
) -> DraftRecord:
    """Assemble a (draft) record with every schema key present, in schema order."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": record_id,
        "category": category,
        "field": field,
        "subfield": subfield,
        "question_format": question_format,
        "question": question,
        "answer": answer,
        "model": "gt",
        "gt_answer": gt_answer if gt_answer is not None else [dict(s) for s in NULL_GT_ANSWER],
        "options": options,
        "answer_type": answer_type,
        "unit": unit,
        "precision": precision,
        "answer_value": answer_value,
        "instruction": instruction,
        "images": images.entries if isinstance(images, ImageRefs) else images,
        "provenance": provenance,
        "source_metadata": source_metadata or {},
        "scores": {"clip": not_scored("not scored yet")},
        "audit": None,
    }


def not_scored(reason: str) -> dict[str, Any]:
    """The ``scores.clip`` value of a record that has not been (or will not be) CLIP-scored."""
    return {"scored": False, "model": None, "reason": reason, "pairs": [], "min_score": None}


def provenance(
    source: str, split: str, source_id: str, license: str, source_file: str
) -> Provenance:
    return {
        "source": source,
        "split": split,
        "source_id": str(source_id),
        "license": license,
        "source_file": source_file,
    }


def json_view(record: Record | DraftRecord) -> Record:
    """The record as JSON: any image ``bytes`` removed (drafts may carry them)."""
    out = dict(record)
    out["images"] = [{k: v for k, v in im.items() if k != "bytes"} for im in record["images"]]
    return out


def segment_images(record: Record | DraftRecord) -> list[str]:
    """Image paths (or draft refs) used by question, answer and gt_answer, in order."""
    used: list[str] = []
    for key in ("question", "answer", "gt_answer"):
        for s in record.get(key) or []:
            if s.get("image") is not None:
                used.append(s["image"])
    return used


def with_scores(record: Record, name: str, value: dict[str, Any]) -> Record:
    """A copy of ``record`` with ``scores.<name>`` set to ``value`` (the other scores kept): how
    every scoring stage (CLIP, the blind audit, the label audit) writes its result."""
    out = dict(record)
    out["scores"] = {**(record.get("scores") or {}), name: value}
    return out
