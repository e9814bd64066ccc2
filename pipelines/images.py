"""Images without Beam: decode, check, hash and reference the images of a draft record.

``load_images(draft)`` is the pure function that the Beam stage
:class:`pipelines.transforms.images.LoadImages` runs on each draft; benchmarks and the readers'
own tests call it directly. For each image of a draft record (``schemas.records``): take the
embedded bytes or read the URI, hash them (sha256), decode once with Pillow under
:class:`ImageLimits` for format, size and pHash, and name the file
``images/<sha256>.<ext>``. Given an :class:`schemas.store.ImageStore`, the bytes are written
there once; the finished record carries only the reference and the metadata, never the
bytes. A record whose image cannot be used is rejected whole (a ``RecordError``), with the
first failing image named in the detail.

Reads are bounded (``schemas.fs.open_bounded``): an image URI is read only inside its
source folder (``DraftImage.root``), only from a regular file, and only up to
``ImageLimits.max_bytes``.

The reasons raised are those of :class:`pipelines.transforms.images.ImageReason` (README.md,
"Dead-letter reasons").

Environment faults are not reasons: a store write that fails (a full disk, an I/O error, an
unwritable folder), or an image read that fails with an error of the machine (``EIO``,
``ENOMEM``, ``EMFILE``...; ``schemas.errors.classify_os_error``), raises
:class:`schemas.errors.EnvironmentFault`, which stops the build instead of dropping records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import imagehash
import numpy as np
import scipy.fft
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from pipelines.config import ImagesConfig, LimitsConfig
from schemas.errors import READING, EnvironmentFault, RecordError, classify_os_error
from schemas.fs import display_path, exists, read_bytes
from schemas.records import DraftImage, DraftRecord, Record, RecordImage
from schemas.store import ImageStore, ref_for

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


# the read-rule reasons of ``schemas.fs`` in the vocabulary of ``LoadImages`` (ImageReason)
_READ_REASONS = {
    "not_a_regular_file": "image_not_regular_file",
    "file_too_large": "image_file_too_large",
    "path_escapes_root": "path_escapes_root",
}


def fetch_bytes(entry: DraftImage, max_bytes: int) -> bytes:
    """The image's bytes: embedded in the draft, or read from its URI.

    A URI is read under ``schemas.fs``'s rules: inside ``entry["root"]`` when given, a regular
    file, at most ``max_bytes`` (``ImageLimits.max_bytes``). Dead-letter details name the file
    relative to its root.
    """
    data = entry.get("bytes")
    uri = entry["uri"]
    root = entry.get("root")
    name = display_path(uri, root)
    if data is None:
        try:
            data = read_bytes(uri, max_bytes=max_bytes, root=root)
        except RecordError as exc:
            reason = _READ_REASONS.get(exc.reason, "image_unreadable")
            raise RecordError(reason, exc.detail) from exc
        except Exception as exc:
            if classify_os_error(exc, READING):  # EIO, ENOMEM...: the machine, not the image
                fault = EnvironmentFault.from_os_error(exc, READING, name, "a source folder")
                raise fault from exc
            if not exists(uri):
                raise RecordError("image_missing", f"{name} does not exist") from exc
            why = getattr(exc, "strerror", None) or type(exc).__name__  # no machine path
            raise RecordError("image_unreadable", f"{name}: {why}") from exc
    if not data:
        raise RecordError("image_empty", f"{name} has zero bytes")
    return bytes(data)


@dataclass(frozen=True)
class ImageLimits(ImagesConfig):
    """The config's ``images`` block (:class:`pipelines.config.ImagesConfig`, every field as
    it is there: ``min_side``, ``max_aspect``, ``max_pixels``, ``exempt_sources``,
    ``on_bad_image``, ``draft_decode``) plus what checking one image derives from the build:

    Attributes:
        check_size: apply ``min_side``/``max_aspect``; False for the images of a source in
            ``exempt_sources`` (:meth:`exempt`).
        max_bytes: read cap on an image file, the ``limits`` block's ``max_image_bytes``.
    """

    check_size: bool
    max_bytes: int

    @classmethod
    def from_config(
        cls,
        images: ImagesConfig | None = None,
        limits: LimitsConfig | None = None,
        check_size: bool = True,
    ) -> ImageLimits:
        """The limits of the build config's ``images`` and ``limits`` blocks (None: the
        schema's defaults); ``check_size=False`` for exempt sources."""
        images = images or ImagesConfig.from_block()
        return cls(
            **{f.name: getattr(images, f.name) for f in dataclasses.fields(ImagesConfig)},
            check_size=check_size,
            max_bytes=(limits or LimitsConfig.from_block()).max_image_bytes,
        )

    @classmethod
    def defaults(cls, **changes: Any) -> ImageLimits:
        """The schema's defaults with ``changes`` (field names), for tests and benchmarks."""
        return dataclasses.replace(cls.from_config(), **changes)

    def exempt(self) -> ImageLimits:
        """These limits without the size gates (``min_side``, ``max_aspect``)."""
        return dataclasses.replace(self, check_size=False)


# The pHash works on a 32x32 grey image, so a JPEG may be decoded at 1/2, 1/4 or 1/8 scale
# (DCT scaling, Pillow's draft mode) as long as its short side stays at least this large.
# Measured on 1,000 crops of real photographs (bench/phash_draft.py, bench/RESULTS.md): a
# 128 px floor kept only ~97.9% of hashes within distance 2 of the full decode; 256 px keeps
# over 99% and hashes ~2.5x faster than a full decode.
DRAFT_MIN_SIDE = 256
# Images too small to draft-decode box-reduce to within this factor of 32x32 before the
# pHash's Lanczos resize (the resize costs about as much as the decode at 640x480). Applied
# on top of draft decoding it cost agreement (99.0% within distance 2 instead of 99.8%), so
# each image takes one shortcut only.
REDUCING_GAP = 4.0


@dataclass(frozen=True)
class ImageInfo:
    format: str
    ext: str
    width: int
    height: int
    phash: str


def to_rgb(im: Image.Image) -> Image.Image:
    """Pixels as 8-bit RGB or L whatever the stored mode: CMYK, palette, LA/RGBA (alpha
    dropped), 16-bit and 32-bit integer and float greyscale (scaled, not clipped), 1-bit."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.round().astype(np.uint8), "L")
    if mode in ("LA", "La"):
        return im.convert("L")
    return im.convert("RGB")


def perceptual_hash(im: Image.Image, fast: bool = True) -> imagehash.ImageHash:
    """64-bit DCT pHash. ``fast=False`` is exactly ``imagehash.phash``; ``fast=True`` lets
    Pillow box-reduce before the 32x32 Lanczos resize (``reducing_gap``), which costs a
    fraction of the full-image Lanczos and changes hashes as little as draft decoding does
    (measured together with it: bench/phash_draft.py)."""
    if not fast:
        return imagehash.phash(im)
    small = im.convert("L").resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    pixels = np.asarray(small, dtype=np.float64)
    dct = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    return imagehash.ImageHash(low > np.median(low))


def inspect_image(data: bytes, uri: str, limits: ImageLimits | None = None) -> ImageInfo:
    """Decode ``data`` once under ``limits`` (None: the schema's defaults, size gates on);
    return its description and 64-bit pHash.

    Raises:
        RecordError: ``image_undecodable`` (not an image), ``image_unsupported_format``,
        ``image_too_large`` (over ``max_pixels``), ``image_multiframe`` (animated GIF, WebP
        or PNG), ``image_truncated``, ``image_corrupt``, ``image_too_small``,
        ``image_bad_aspect``.
    """
    limits = limits or ImageLimits.from_config()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise RecordError("image_too_large", f"{uri}: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RecordError("image_undecodable", f"{uri}: {type(exc).__name__}: {exc}") from exc
    with im:
        fmt = im.format
        if fmt not in FORMATS:
            raise RecordError("image_unsupported_format", f"{uri}: format {fmt} is not supported")
        width, height = im.size
        if width * height > limits.max_pixels:
            raise RecordError(
                "image_too_large",
                f"{uri}: {width}x{height} = {width * height} pixels"
                f" > max_pixels {limits.max_pixels}",
            )
        # MPO is a camera's multi-picture JPEG: its first frame is the photo
        if fmt != "MPO" and getattr(im, "n_frames", 1) > 1:
            raise RecordError("image_multiframe", f"{uri}: {fmt} with {im.n_frames} frames")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # JPEG keeps EXIF in a header segment; PNG may put it after the pixels, so
                # for PNG this already decodes the image (and can fail like load() does)
                orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
                drafted = False
                if limits.draft_decode and fmt in ("JPEG", "MPO"):
                    scale = min(im.size) // DRAFT_MIN_SIDE
                    if scale >= 2:
                        target = (im.size[0] // scale, im.size[1] // scale)
                        im.draft("RGB" if im.mode not in ("L", "CMYK") else im.mode, target)
                        drafted = True
                im.load()
        except OSError as exc:
            reason = "image_truncated" if "truncated" in str(exc) else "image_corrupt"
            raise RecordError(reason, f"{uri}: {exc}") from exc
        except (ValueError, SyntaxError, EOFError, struct.error) as exc:
            raise RecordError("image_corrupt", f"{uri}: {type(exc).__name__}: {exc}") from exc
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        pixels = ImageOps.exif_transpose(to_rgb(im)) if orientation != 1 else to_rgb(im)
        # one shortcut per image: a draft decode, or (too small to draft) the box reduction
        phash = str(perceptual_hash(pixels, fast=limits.draft_decode and not drafted))
    if limits.check_size:
        if min(width, height) < limits.min_side:
            raise RecordError(
                "image_too_small", f"{uri}: {width}x{height}, min side {limits.min_side}"
            )
        if max(width, height) / min(width, height) > limits.max_aspect:
            raise RecordError(
                "image_bad_aspect",
                f"{uri}: {width}x{height}, aspect {max(width, height) / min(width, height):.2f}"
                f" > {limits.max_aspect}",
            )
    schema_format, ext = FORMATS[fmt]
    return ImageInfo(schema_format, ext, width, height, phash)


DROP_RECORD = "drop_record"
DROP_SEGMENT = "drop_segment"


def load_images(
    draft: DraftRecord,
    limits: ImageLimits | None = None,
    on_bad_image: str = DROP_RECORD,
    store: ImageStore | None = None,
) -> Record:
    """Resolve every draft image; returns the finished record (image references, no bytes).

    Without ``limits`` only decoding is checked (no size or aspect gate), which is what the
    readers' own tests need; the build passes the config's limits. Images that fail drop the
    record (``drop_record``), or with ``drop_segment`` only their segment's picture, see
    :func:`load_images_checked`, whose dropped-image list this function discards.
    """
    record, _ = load_images_checked(draft, limits, on_bad_image, store)
    return record


def check_draft_shape(draft: object) -> None:
    """Check the parts of a draft this stage reads, so a restructure function that returned
    something else is a ``malformed_draft`` dead letter (the schema checks the rest later).

    Raises:
        RecordError(malformed_draft): ``images`` is not a list of ``{ref, uri, bytes?}``;
        ``question``/``answer``/``gt_answer`` are not lists of ``{text, image}``; or
        ``provenance`` is not a mapping with a string ``source_file``.
    """

    def bad(what: str) -> RecordError:
        return RecordError("malformed_draft", f"the draft's {what}")

    if not isinstance(draft, dict):
        raise bad(f"type is {type(draft).__name__}, not a mapping")
    entries = draft.get("images")
    if not isinstance(entries, list):
        raise bad("images is not a list")
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("ref"), str)
            and isinstance(entry.get("uri"), str)
            and isinstance(entry.get("bytes"), bytes | bytearray | memoryview | None)
            and isinstance(entry.get("root"), str | None)
        ):
            raise bad("images hold an entry that is not {ref, uri, bytes, root}")
    for key in ("question", "answer", "gt_answer"):
        segments = draft.get(key)
        if not isinstance(segments, list) or not all(
            isinstance(s, dict) and "text" in s and "image" in s for s in segments
        ):
            raise bad(f"{key} is not a list of {{text, image}} segments")
    prov = draft.get("provenance")
    if not isinstance(prov, dict) or not isinstance(prov.get("source_file"), str):
        raise bad("provenance is not a mapping with a source_file")


def load_images_checked(
    draft: DraftRecord,
    limits: ImageLimits | None = None,
    on_bad_image: str = DROP_RECORD,
    store: ImageStore | None = None,
) -> tuple[Record, list[RecordError]]:
    """:func:`load_images`, also returning the images dropped under ``drop_segment``.

    With ``store``, every image that passes is written into it (once: an image already
    there is not written again); without, nothing is written (the readers' own tests).

    Raises:
        EnvironmentFault: a store write, or an image read, failed for the machine's reasons.
        RecordError: an image failed under ``drop_record``; or, under ``drop_segment``, the
        question lost all its images (the first question image's reason) or the answer lost
        all its segments (``answer_empty``).
    """
    check_draft_shape(draft)
    limits = limits or ImageLimits.from_config(check_size=False)
    images: list[RecordImage] = []
    path_of: dict[str, str] = {}
    failed: dict[str, RecordError] = {}
    for entry in draft["images"]:
        try:
            data = fetch_bytes(entry, limits.max_bytes)
            info = inspect_image(data, display_path(entry["uri"], entry.get("root")), limits)
        except RecordError as exc:
            if on_bad_image != DROP_SEGMENT:
                raise
            failed[entry["ref"]] = exc
            continue
        digest = hashlib.sha256(data).hexdigest()
        path = ref_for(digest, info.ext)
        path_of[entry["ref"]] = path
        if any(im["path"] == path for im in images):
            continue  # the same picture under two refs: list it once
        if store is not None:
            store.put(path, data)  # a failed write raises EnvironmentFault (the run stops)
        images.append(
            {
                "path": path,
                "sha256": digest,
                "width": info.width,
                "height": info.height,
                "format": info.format,
                # the reader names it (sources.base.SourceReader.name_sources); a draft from
                # elsewhere: relative to its root, never a machine path
                "source_uri": entry.get("source_uri")
                or display_path(entry["uri"], entry.get("root")),
                "license": entry.get("license"),
                "phash": info.phash,
            }
        )
    record = dict(draft)
    for key in ("question", "answer", "gt_answer"):
        segments = []
        for s in draft[key]:
            image = s["image"]
            if image in failed:
                if s["text"] is None:
                    continue  # an image-only segment without its image is nothing
                image = None
            segments.append({"text": s["text"], "image": path_of.get(image, image)})
        record[key] = segments
    if failed:
        question_refs = [s["image"] for s in draft["question"] if s["image"] is not None]
        if not any(s["image"] for s in record["question"]):
            first = failed[next(r for r in question_refs if r in failed)]
            raise RecordError(first.reason, f"{first.detail} (the question has no image left)")
        if not record["answer"]:
            raise RecordError("answer_empty", "every answer segment lost its image")
    record["images"] = images
    return record, list(failed.values())


def relative_to(path: str, base_dir: str) -> str:
    """``path`` relative to ``base_dir`` when it is an absolute local path near it, else its
    base name (:func:`schemas.fs.display_path`); a relative path or a URI unchanged.

    Readers already name files relative to their source's root
    (``sources.base.source_relative``); this keeps a draft made elsewhere from carrying the
    builder's machine layout (home folders, temporary mounts) into a record.
    """
    if "://" in path or not os.path.isabs(path.split("#", 1)[0]):
        return path
    rel = os.path.relpath(path, base_dir) if base_dir else ""
    return display_path(path, None) if not rel or rel.startswith("../../..") else rel


def localize_paths(record: Record, base_dir: str) -> Record:
    """Rewrite ``provenance.source_file`` and ``images[].source_uri`` with :func:`relative_to`."""
    record["provenance"] = dict(
        record["provenance"], source_file=relative_to(record["provenance"]["source_file"], base_dir)
    )
    for im in record["images"]:
        im["source_uri"] = relative_to(im["source_uri"], base_dir)
    return record
