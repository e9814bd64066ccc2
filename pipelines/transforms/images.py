"""Image loading: turn a draft record's image references into content-addressed images.

``load_images(draft)`` is the pure function; ``LoadImages`` is the Beam stage around it.
For each image of a draft record (``schemas.records``): take the embedded bytes or read the
URI, hash them (sha256), decode once with Pillow under limits for format, size and pHash,
and name the file ``images/<sha256>.<ext>``. Given an :class:`schemas.store.ImageStore`,
the bytes are written there once; the finished record carries only the reference and the
metadata, never the bytes. A record whose image cannot be used is rejected whole, with the
first failing image named in the detail.

Reads are bounded (``schemas.fs.open_bounded``): an image URI is read only inside its
source folder (``DraftImage.root``), only from a regular file, and only up to
``limits.max_image_bytes``.

The reasons are :class:`ImageReason`'s (README.md, "Dead-letter reasons").

Environment faults are not reasons: a store write that fails (a full disk, an I/O error, an
unwritable folder), or an image read that fails with an error of the machine (``EIO``,
``ENOMEM``, ``EMFILE``...; ``schemas.errors.classify_os_error``), raises
:class:`schemas.errors.EnvironmentFault`, which stops the build instead of dropping records.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import imagehash
import numpy as np
import scipy.fft
from apache_beam.pvalue import TaggedOutput
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from pipelines.config import ImagesConfig, LimitsConfig
from schemas.deadletter import STAGE_IMAGES, UNIT_IMAGE, origin
from schemas.errors import READING, EnvironmentFault, RecordError, classify_os_error
from schemas.fs import display_path, exists, read_bytes
from schemas.records import DraftImage, DraftRecord, Record, RecordImage
from schemas.stage import RecordStage, StageFn, StageReason
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


class ImageReason(StageReason):
    """Why ``LoadImages`` drops a record (or, under ``drop_segment``, one image)."""

    IMAGE_MISSING = "image_missing", "an image file that does not exist"
    IMAGE_UNREADABLE = "image_unreadable", "an image file that exists but cannot be read"
    IMAGE_NOT_REGULAR_FILE = (
        "image_not_regular_file",
        "an image path that is a FIFO, device, socket or folder",
    )
    IMAGE_FILE_TOO_LARGE = "image_file_too_large", "an image file over `limits.max_image_bytes`"
    PATH_ESCAPES_ROOT = (
        "path_escapes_root",
        "an image path (or a symlink) that leads out of its source folder",
    )
    IMAGE_EMPTY = "image_empty", "an image file of zero bytes"
    IMAGE_UNDECODABLE = "image_undecodable", "bytes that Pillow does not recognise as an image"
    IMAGE_UNSUPPORTED_FORMAT = (
        "image_unsupported_format",
        "an image, but not in one of the schema's formats",
    )
    IMAGE_TOO_LARGE = (
        "image_too_large",
        "over `images.max_pixels` (the decompression-bomb cap, checked from the header)",
    )
    IMAGE_MULTIFRAME = "image_multiframe", "an animated GIF, WebP or PNG"
    IMAGE_TRUNCATED = "image_truncated", "image data that ends early"
    IMAGE_CORRUPT = "image_corrupt", "image data that fails to decode"
    IMAGE_TOO_SMALL = "image_too_small", "a side shorter than `images.min_side`"
    IMAGE_BAD_ASPECT = "image_bad_aspect", "long side / short side over `images.max_aspect`"
    MALFORMED_DRAFT = (
        "malformed_draft",
        "a restructure function returned a draft this stage cannot read",
    )
    ANSWER_EMPTY = (
        "answer_empty",
        "under `drop_segment`, every answer segment lost its image",
    )


# the read-rule reasons of ``schemas.fs`` in this stage's vocabulary
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


# the schema's ``images`` defaults, which ImageLimits takes for the gates a caller leaves out
_IMAGES = ImagesConfig.from_block()
_LIMITS = LimitsConfig.from_block()


@dataclass(frozen=True)
class ImageLimits:
    """The integrity gates of ``inspect_image`` (from the ``images`` block of the build config).

    Attributes:
        min_side: smallest accepted width or height, after EXIF orientation.
        max_aspect: largest accepted long side / short side.
        max_pixels: decompression-bomb cap on width x height, checked from the header before
            any pixel is decoded.
        check_size: apply ``min_side``/``max_aspect`` (off for exempt sources).
        draft: hash JPEGs from a DCT-scaled (draft) decode; see ``bench/phash_draft.py``.
        max_bytes: read cap on an image file (``limits.max_image_bytes``).

    Gates left out take ``schemas/config.schema.json``'s ``images`` and ``limits`` defaults.
    """

    min_side: int = _IMAGES.min_side
    max_aspect: float = _IMAGES.max_aspect
    max_pixels: int = _IMAGES.max_pixels
    check_size: bool = True
    draft: bool = _IMAGES.draft_decode
    max_bytes: int = _LIMITS.max_image_bytes

    @classmethod
    def from_config(
        cls, images: ImagesConfig, check_size: bool = True, limits: LimitsConfig | None = None
    ) -> ImageLimits:
        """The gates of the ``images`` block (and the ``limits`` block's image read cap);
        ``check_size=False`` for exempt sources."""
        return cls(
            min_side=images.min_side,
            max_aspect=images.max_aspect,
            max_pixels=images.max_pixels,
            check_size=check_size,
            draft=images.draft_decode,
            max_bytes=(limits or _LIMITS).max_image_bytes,
        )


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


def inspect_image(data: bytes, uri: str, limits: ImageLimits = ImageLimits()) -> ImageInfo:
    """Decode ``data`` once under ``limits``; return its description and 64-bit pHash.

    Raises:
        RecordError: ``image_undecodable`` (not an image), ``image_unsupported_format``,
        ``image_too_large`` (over ``max_pixels``), ``image_multiframe`` (animated GIF, WebP
        or PNG), ``image_truncated``, ``image_corrupt``, ``image_too_small``,
        ``image_bad_aspect``.
    """
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
                if limits.draft and fmt in ("JPEG", "MPO"):
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
        phash = str(perceptual_hash(pixels, fast=limits.draft and not drafted))
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
    limits = limits or ImageLimits(check_size=False)
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


class LoadImagesFn(StageFn):
    def __init__(
        self,
        relative_to: str,
        images: ImagesConfig,
        store: ImageStore | None,
        limits: LimitsConfig | None = None,
    ) -> None:
        self._base_dir = relative_to
        self._images = images
        self._store = store
        self._read_limits = limits

    def setup(self) -> None:
        images = self._images
        self._policy = images.on_bad_image
        self._exempt = set(images.exempt_sources)
        self._limits = ImageLimits.from_config(images, limits=self._read_limits)
        self._exempt_limits = ImageLimits.from_config(
            images, check_size=False, limits=self._read_limits
        )

    def process_element(self, draft: DraftRecord) -> Iterator[Record | TaggedOutput]:
        # a failure raises: the base makes it a dead letter (an EnvironmentFault stops the run)
        source, source_id = origin(draft)
        limits = self._exempt_limits if source in self._exempt else self._limits
        record, dropped = load_images_checked(draft, limits, self._policy, self._store)
        record = localize_paths(record, self._base_dir)
        for exc in dropped:
            yield self.reject(exc.reason, source, source_id, exc.detail, unit=UNIT_IMAGE)
        self.count("out")
        self.count("images", len(record["images"]))
        yield record


class LoadImages(RecordStage):
    """Resolve draft images to content-addressed images: check, hash, store, reference.

    Input: ``DraftRecord`` (images as references, or bytes embedded by parquet sources).
    Output: the finished ``Record`` as the main output ``records`` (images are
    ``images/<sha256>.<ext>`` references with metadata; no bytes) and ``DeadLetter`` (stage
    ``load_images``, reasons :class:`ImageReason`) under ``DEAD``.
    Counters (namespace ``LoadImages``): ``out``, ``images``, ``dropped_<reason>``.

    Args:
        relative_to: the build config's folder: local paths inside it that are written into
            records (source files, image URIs) are made relative to it.
        images: the ``images`` block of the build config (limits, exempt sources,
            ``on_bad_image``, ``draft_decode``); None: the schema's defaults.
        store: the build's image store; every image that passes is written there once.
            Without one nothing is written (tests of the checks alone).
        limits: the ``limits`` block of the build config (``max_image_bytes`` caps each
            image read); None: the schema's defaults.
    """

    stage = STAGE_IMAGES
    fns = (LoadImagesFn,)
    Reason = ImageReason

    def __init__(
        self,
        relative_to: str = "",
        images: ImagesConfig | None = None,
        store: ImageStore | None = None,
        limits: LimitsConfig | None = None,
    ) -> None:
        super().__init__()
        self._base_dir = relative_to
        self._images = images or ImagesConfig.from_block()
        self._store = store
        self._limits = limits or LimitsConfig.from_block()

    def expand_stage(self, drafts: beam.PCollection[DraftRecord]) -> beam.pvalue.DoOutputsTuple:
        fn = LoadImagesFn(self._base_dir, self._images, self._store, self._limits)
        return drafts | "LoadImagesFn" >> self.par_do(fn)
