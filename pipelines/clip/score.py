"""Scoring stage: CLIP cosine similarity of every image segment with its text.

    records ─► PrepareClipInputs ─► RunInference(KeyedModelHandler(OpenClipModelHandler))
       │            │ (read from the image store,          │ (image and text embeddings)
       │            │  decode, resize, tokenize)           │
       │            └─ DEAD (undecodable image)            ▼
       └─ keyed records ─────────────► CoGroupByKey(record id) ─► AttachClipScores ─► records
                                                                   └─ DEAD (inference failed)

Pixels come from the build's image store (``schemas.store``): records carry references
only, and each image is read and decoded inside ``PrepareClipInputs``, so no image bytes
travel between stages (the resized uint8 arrays go to RunInference, which batches them).
The record keeps everything it had; only ``scores.clip`` changes:
``{scored: true, model, reason: null, pairs: [{image, text_from, score}], min_score}`` where
``min_score`` is the lowest pair. Which text an image is scored against is decided in
:mod:`pipelines.clip.pairs`. Records that cannot be scored (no image segment, or an image with
no text to pair) pass on with ``scored: false`` and the reason. A record with an image that
cannot be decoded is a dead letter (stage ``score_clip``, reason ``image_undecodable``): such
a record is unusable in a benchmark, and the image-integrity stage should have caught it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import TaggedOutput

from pipelines.clip.model import IMAGE, TEXT, ClipInput, ImagePreprocessor, preprocess_config
from pipelines.clip.pairs import clip_pairs, text_ref
from pipelines.clip.settings import ClipSettings
from pipelines.transforms.inference import (
    AttachScoresFn,
    KeyedModelHandler,
    RunInference,
    failed_batch,
    record_origin,
)
from schemas.deadletter import DEAD, STAGE_SCORE_CLIP
from schemas.errors import READING, EnvironmentFault, classify_os_error
from schemas.records import Record, not_scored, with_scores
from schemas.stage import RecordStage, StageFn, StageReason
from schemas.store import ImageStore

RECORDS = "records"
KEYED = "keyed_records"
EMBEDDINGS = "image_embeddings"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` of two float32 vectors, exactly rounded, clipped to [-1, 1].

    Each float32 product is exact in float64 and ``math.fsum`` rounds the sum once, so the
    value depends on the two vectors alone: not on summation order, BLAS kernel, alignment
    or machine (``np.dot`` may differ in the last bit between those).
    """
    products = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)
    return min(1.0, max(-1.0, math.fsum(products.tolist())))


def clip_scores(
    record: Record, embeddings: dict[tuple[str, str], np.ndarray], model_id: str
) -> dict[str, Any]:
    """The ``scores.clip`` value of ``record`` from its image and text embeddings.

    ``embeddings`` maps ``("image", sha256)`` and ``("text", text_ref(text))`` to
    L2-normalised vectors. Scores are cosines (:func:`cosine`), rounded to 6 places; with the
    model's fixed forward shape (:class:`pipelines.clip.model.ClipModel`) they are the same
    bits in every build of the same inputs on the same kind of machine.

    Raises:
        KeyError: an embedding the record needs is missing.
    """
    sha_of = {im["path"]: im["sha256"] for im in record["images"]}
    pairs = []
    for pair in clip_pairs(record):
        img = embeddings[(IMAGE, sha_of[pair.image])]
        txt = embeddings[(TEXT, text_ref(pair.text))]
        score = round(cosine(img, txt), 6)
        pairs.append({"image": pair.image, "text_from": pair.text_from, "score": score})
    return {
        "scored": True,
        "model": model_id,
        "reason": None,
        "pairs": pairs,
        "min_score": min(p["score"] for p in pairs),
    }


class ScoreReason(StageReason):
    """Why ``ScoreImageText`` drops a record."""

    IMAGE_NOT_IN_STORE = (
        "image_not_in_store",
        "the image store has no such image or cannot read it (an error of the machine there, "
        "such as `EIO`, stops the run instead)",
    )
    IMAGE_UNDECODABLE = "image_undecodable", "an image's bytes do not decode for CLIP"
    IMAGE_NOT_LISTED = "image_not_listed", "a segment names an image the record does not list"
    CLIP_INFERENCE_FAILED = (
        "clip_inference_failed",
        "the model raised on the record's batch; the detail is the error",
    )
    CLIP_EMBEDDING_MISSING = "clip_embedding_missing", "an embedding did not come back"


class PrepareClipInputsFn(StageFn):
    """Read, decode and resize each distinct image, tokenize each distinct text of a record.

    Images are read from ``store``; a record whose image is not there (or cannot be decoded)
    is a dead letter.
    """

    def __init__(self, settings: ClipSettings, store: ImageStore, jpeg_draft: bool = True) -> None:
        self._settings = settings
        self._store = store
        self._jpeg_draft = jpeg_draft

    def setup(self) -> None:
        import open_clip

        from pipelines.clip.tiny import register_model_configs

        register_model_configs()
        spec = self._settings.spec
        self._preprocess = ImagePreprocessor(preprocess_config(spec), jpeg_draft=self._jpeg_draft)
        self._tokenizer = open_clip.get_tokenizer(spec.model)

    def origin_of(self, record: Record) -> tuple[str, str]:
        return record_origin(record)

    def process_element(self, record: Record) -> Iterator[Any]:
        self.count("in")
        source, source_id = record_origin(record)
        try:
            pairs = clip_pairs(record)
        except ValueError as exc:
            self.count("not_scored")
            yield beam.pvalue.TaggedOutput(
                RECORDS, with_scores(record, "clip", not_scored(str(exc)))
            )
            return
        by_path = {im["path"]: im for im in record["images"]}
        inputs: list[ClipInput] = []
        seen: set[tuple[str, str]] = set()
        for pair in pairs:
            image = by_path.get(pair.image)
            if image is None:
                yield self.reject(
                    ScoreReason.IMAGE_NOT_LISTED,
                    source,
                    source_id,
                    f"segment image {pair.image} is not in the record's images",
                )
                return
            if (IMAGE, image["sha256"]) not in seen:
                seen.add((IMAGE, image["sha256"]))
                try:
                    data = self._store.get(image["path"])
                except Exception as exc:  # missing or unreadable: dead letter, never a crash
                    if classify_os_error(exc, READING):  # EIO...: the machine, stop the run
                        raise EnvironmentFault.from_os_error(exc, READING, pair.image) from exc
                    yield self.reject(
                        ScoreReason.IMAGE_NOT_IN_STORE,
                        source,
                        source_id,
                        f"{pair.image}: {type(exc).__name__}",
                    )
                    return
                try:
                    arr = self._preprocess(data)
                except Exception as exc:  # any decoder failure: dead letter, never a crash
                    yield self.reject(
                        ScoreReason.IMAGE_UNDECODABLE,
                        source,
                        source_id,
                        f"{pair.image}: {type(exc).__name__}: {exc}",
                    )
                    return
                inputs.append(ClipInput(IMAGE, image["sha256"], arr))
            ref = text_ref(pair.text)
            if (TEXT, ref) not in seen:
                seen.add((TEXT, ref))
                tokens = self._tokenizer([pair.text])[0].numpy()
                inputs.append(ClipInput(TEXT, ref, tokens))
        key = record["id"]
        yield beam.pvalue.TaggedOutput(KEYED, (key, record))
        for item in inputs:
            self.count("images" if item.kind == IMAGE else "texts")
            yield (key, item)


class AttachClipScoresFn(AttachScoresFn):
    """Join a record with its embeddings and write ``scores.clip``."""

    def process_element(
        self, element: tuple[str, dict[str, list]]
    ) -> Iterator[Record | TaggedOutput]:
        _key, group = element
        failures = group["failed"]
        embeddings = {tuple(k): v for k, v in group["embeddings"]}
        for record in group["records"]:
            source, source_id = record_origin(record)
            if failures:
                yield self.reject(ScoreReason.CLIP_INFERENCE_FAILED, source, source_id, failures[0])
                continue
            try:
                scores = clip_scores(record, embeddings, self._model_id)
            except KeyError as exc:
                yield self.reject(
                    ScoreReason.CLIP_EMBEDDING_MISSING,
                    source,
                    source_id,
                    f"no embedding for {exc}",
                )
                continue
            self.count("scored")
            yield with_scores(record, "clip", scores)


def _first(values):
    for v in values:
        return v
    return None


class ScoreImageText(RecordStage):
    """CLIP-score every image segment of each record against its text.

    Args:
        settings: :class:`ClipSettings` (model, weights, device, precision, batch bounds,
            ``share_model``: one model per machine shared across worker processes).
        store: the build's image store, where the records' images are read from.
        jpeg_draft: decode JPEGs at a reduced DCT scale when they are much larger than the
            model input (faster; see :class:`pipelines.clip.model.ImagePreprocessor`).

    Input:
        ``PCollection`` of finished records (after image loading and validation), whose
        ``images[].path`` name files in ``store``. Record ids must be unique
        (``DropDuplicateIds`` runs before): they key the join of records and embeddings.

    Output:
        a dict of ``PCollection``:
        ``"records"``: every input record that was not dead-lettered, with ``scores.clip``
        written (``scored: true`` with pairs and ``min_score``, or ``scored: false`` with the
        reason); ``"dead"`` (``schemas.deadletter.DEAD``): dead letters;
        ``"image_embeddings"``: ``(sha256, embedding)`` once per distinct image, the input of
        :class:`pipelines.clip.FindEmbeddingDuplicates`.

    Dead letters: stage ``score_clip``, reasons :class:`ScoreReason`.

    Counters (namespace ``ScoreImageText``):
        ``in``, ``scored``, ``not_scored``, ``images``, ``texts``, ``dropped_<reason>``; the
        handler adds RunInference's own (namespace ``OpenClipModelHandler``: batch sizes,
        inference time, model load time).

    Example::

        scored = records | "ScoreImageText" >> ScoreImageText(settings, ImageStore(output))
        records, dead = scored["records"], scored[DEAD]
    """

    stage = STAGE_SCORE_CLIP
    Reason = ScoreReason
    outputs = (EMBEDDINGS,)
    fns = (PrepareClipInputsFn, AttachClipScoresFn)

    def __init__(
        self,
        settings: ClipSettings,
        store: ImageStore,
        jpeg_draft: bool = True,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._store = store
        self._jpeg_draft = jpeg_draft

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        prepared = records | "PrepareClipInputs" >> self.par_do(
            PrepareClipInputsFn(self._settings, self._store, self._jpeg_draft),
            main="inputs",
            tags=(RECORDS, KEYED),
        )
        handler = KeyedModelHandler(self._settings.model_handler())
        inferred, dlq = (
            prepared.inputs | "RunInference" >> RunInference(handler).with_exception_handling()
        )
        embeddings = inferred | "EmbeddingByKey" >> beam.MapTuple(
            lambda key, result: (key, (result.example, result.inference))
        )
        failed = dlq.failed_inferences | "FailedByKey" >> beam.FlatMap(failed_batch)
        joined = {
            "records": prepared[KEYED],
            "embeddings": embeddings,
            "failed": failed,
        } | "JoinEmbeddings" >> beam.CoGroupByKey()
        attached = joined | "AttachClipScores" >> self.par_do(
            AttachClipScoresFn(self._settings.spec.model_id)
        )
        image_embeddings = (
            embeddings
            | "ImageEmbeddings"
            >> beam.FlatMap(lambda kv: [(kv[1][0][1], kv[1][1])] if kv[1][0][0] == IMAGE else [])
            | "OneEmbeddingPerImage" >> beam.CombinePerKey(_first)
        )
        return {
            RECORDS: (attached[RECORDS], prepared[RECORDS]) | "FlattenScored" >> beam.Flatten(),
            DEAD: (prepared[DEAD], attached[DEAD]) | "FlattenDead" >> beam.Flatten(),
            EMBEDDINGS: image_embeddings,
        }


__all__ = [
    "STAGE_SCORE_CLIP",
    "AttachClipScoresFn",
    "PrepareClipInputsFn",
    "ScoreImageText",
    "clip_scores",
    "cosine",
]
