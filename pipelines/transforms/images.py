"""Image loading: turn a draft record's image references into content-addressed images.

``load_images(draft)`` is the pure function; ``LoadImages`` is the Beam stage around it.
For each image of a draft record (``schemas.records``): take the embedded bytes or read the
URI, hash them (sha256), read the header with Pillow for format, width and height, and
name the file ``images/<sha256>.<ext>``. A record whose image cannot be used is rejected
whole, with the first failing image named in the detail.

Reasons: ``image_missing`` (no such file), ``image_unreadable`` (the file exists but
cannot be read), ``image_empty`` (zero bytes), ``image_undecodable`` (not an image Pillow
recognises), ``image_unsupported_format`` (an image, but not one of the schema's formats),
``image_too_large`` (Pillow's decompression-bomb guard).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from typing import Any

import apache_beam as beam
from PIL import Image, UnidentifiedImageError

from pipelines.deadletter import DEAD, STAGE_IMAGES, from_exception
from pipelines.errors import RecordError
from pipelines.metrics import inc
from sources.base import exists, read_bytes

# Pillow format name -> (schema format, file extension)
FORMATS = {
    "JPEG": ("jpeg", "jpg"),
    "MPO": ("jpeg", "jpg"),  # multi-picture JPEG (some cameras); the first frame is a JPEG
    "PNG": ("png", "png"),
    "GIF": ("gif", "gif"),
    "WEBP": ("webp", "webp"),
    "BMP": ("bmp", "bmp"),
    "TIFF": ("tiff", "tiff"),
}


def fetch_bytes(entry: dict[str, Any]) -> bytes:
    """The image's bytes: embedded in the draft, or read from its URI."""
    data = entry.get("bytes")
    if data is None:
        uri = entry["uri"]
        try:
            data = read_bytes(uri)
        except Exception as exc:
            if not exists(uri):
                raise RecordError("image_missing", f"{uri} does not exist") from exc
            raise RecordError("image_unreadable", f"{uri}: {type(exc).__name__}: {exc}") from exc
    if not data:
        raise RecordError("image_empty", f"{entry['uri']} has zero bytes")
    return bytes(data)


def describe_image(data: bytes, uri: str) -> tuple[str, str, int, int]:
    """(format, extension, width, height) from the image header, without a full decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format, im.size
    except Image.DecompressionBombError as exc:
        raise RecordError("image_too_large", f"{uri}: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RecordError("image_undecodable", f"{uri}: {type(exc).__name__}: {exc}") from exc
    if fmt not in FORMATS:
        raise RecordError("image_unsupported_format", f"{uri}: format {fmt} is not supported")
    schema_format, ext = FORMATS[fmt]
    return schema_format, ext, width, height


def load_images(draft: dict[str, Any]) -> dict[str, Any]:
    """Resolve every draft image; returns the finished record (images carry ``bytes``)."""
    images: list[dict[str, Any]] = []
    path_of: dict[str, str] = {}
    for entry in draft["images"]:
        data = fetch_bytes(entry)
        fmt, ext, width, height = describe_image(data, entry["uri"])
        digest = hashlib.sha256(data).hexdigest()
        path = f"images/{digest}.{ext}"
        path_of[entry["ref"]] = path
        if any(im["path"] == path for im in images):
            continue  # the same picture under two refs: list it once
        images.append(
            {
                "path": path,
                "sha256": digest,
                "width": width,
                "height": height,
                "format": fmt,
                "source_uri": entry["uri"],
                "license": entry.get("license"),
                "phash": None,
                "bytes": data,
            }
        )
    record = dict(draft)
    for key in ("question", "answer", "gt_answer"):
        record[key] = [
            {"text": s["text"], "image": path_of.get(s["image"], s["image"])} for s in draft[key]
        ]
    record["images"] = images
    return record


def relative_to(path: str, base_dir: str) -> str:
    """``path`` relative to ``base_dir`` when it is a local path inside it, else unchanged.

    Records name the files they came from; this keeps the builder's machine layout (home
    folders, temporary mounts) out of them while keeping the names a config would use.
    """
    if not base_dir or "://" in path or not os.path.isabs(path.split("#", 1)[0]):
        return path
    rel = os.path.relpath(path, base_dir)
    return path if rel.startswith("../../..") else rel


def localize_paths(record: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """Rewrite ``provenance.source_file`` and ``images[].source_uri`` with :func:`relative_to`."""
    record["provenance"] = dict(
        record["provenance"], source_file=relative_to(record["provenance"]["source_file"], base_dir)
    )
    for im in record["images"]:
        im["source_uri"] = relative_to(im["source_uri"], base_dir)
    return record


class LoadImagesFn(beam.DoFn):
    def __init__(self, relative_to: str = "") -> None:
        self._base_dir = relative_to

    def process(self, draft: dict[str, Any]):
        source = draft["provenance"]["source"]
        try:
            record = localize_paths(load_images(draft), self._base_dir)
        except Exception as exc:  # every failure becomes a dead letter, never a crash
            dl = from_exception(STAGE_IMAGES, source, draft["provenance"]["source_id"], exc)
            inc("LoadImages", f"dropped_{dl['reason']}")
            yield beam.pvalue.TaggedOutput(DEAD, dl)
            return
        inc("LoadImages", "out")
        inc("LoadImages", "images", len(record["images"]))
        yield record


class LoadImages(beam.PTransform):
    """Resolve draft images to content-addressed images with metadata and bytes.

    Input: draft records. Output: a ``DoOutputsTuple`` with the finished records as the main
    output and dead letters (stage ``load_images``) under ``DEAD``.
    Counters (namespace ``LoadImages``): ``out``, ``images``, ``dropped_<reason>``.

    Args:
        relative_to: the build config's folder: local paths inside it that are written into
            records (source files, image URIs) are made relative to it.
    """

    def __init__(self, relative_to: str = "") -> None:
        super().__init__()
        self._base_dir = relative_to

    def expand(self, drafts):
        fn = LoadImagesFn(self._base_dir)
        return drafts | "LoadImagesFn" >> beam.ParDo(fn).with_outputs(DEAD, main="records")
