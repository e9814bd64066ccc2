"""The Beam stage of image loading: ``LoadImages`` runs :func:`pipelines.images.load_images`
on every draft record and makes each failure a dead letter.

The decoding, checks, hashing and storing are in :mod:`pipelines.images` (no Beam there);
this module holds the stage, its reasons (:class:`ImageReason`; README.md, "Dead-letter
reasons") and the choice of limits per source (``images.exempt_sources`` skip the size gates).
An :class:`schemas.errors.EnvironmentFault` raised there (a failed store write or an image
read that fails for the machine's reasons) stops the build instead of dropping records.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipelines.config import ImagesConfig, LimitsConfig
from pipelines.images import ImageLimits, load_images_checked, localize_paths
from schemas.deadletter import STAGE_IMAGES, UNIT_IMAGE, origin
from schemas.records import DraftRecord, Record
from schemas.stage import RecordStage, StageFn, StageReason
from schemas.store import ImageStore


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
        self._limits = ImageLimits.from_config(self._images, self._read_limits)
        self._exempt_limits = self._limits.exempt()
        self._exempt = set(self._limits.exempt_sources)
        self._policy = self._limits.on_bad_image

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
