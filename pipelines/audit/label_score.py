"""Label-suspicion scoring stage: ask a vision-language model, write ``scores.label``.

    records ─► PrepareLabelInputs ─► RunInference(KeyedModelHandler(label handler))
       │          │ (gold label, question parts,          │ (scores.label per item)
       │          │  image bytes from the store)          ▼
       │          └─ not checkable: scores.label      CoGroupByKey(record id)
       │             scored false, passes on               │
       └─ keyed records ─────────────────────────────────► AttachLabelScores ─► records
                                                            ─► FlagLabelSuspect ─► records

:class:`ScoreLabelAgreement` writes ``scores.label`` (:mod:`pipelines.audit.label`) and drops
nothing: an item that cannot be checked (no gold label, an image the store or the model
cannot read, a batch the model raised on) passes on with ``scored: false`` and the reason. A
fault of the environment (an I/O error reading the store, a model server refusing the key)
stops the run. :class:`pipelines.audit.label_flag.FlagLabelSuspect`, a separate stage, adds
the ``label_suspect`` audit flag where ``suspicion >= threshold``; flags never drop an item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from pipelines.audit.label import gold_label, label_item, not_checked
from pipelines.transforms.inference import (
    AttachScoresFn,
    KeyedModelHandler,
    ModelHandler,
    RunInference,
    failed_batch,
    record_origin,
)
from schemas.deadletter import DEAD, STAGE_SCORE_LABEL
from schemas.errors import READING, EnvironmentFault, classify_os_error
from schemas.records import Record, with_scores
from schemas.stage import RecordStage, StageFn
from schemas.store import ImageStore

RECORDS = "records"
KEYED = "keyed_records"


def with_label(record: Record, scores: dict[str, Any]) -> Record:
    """A copy of ``record`` with ``scores.label`` set."""
    return with_scores(record, "label", scores)


class PrepareLabelInputsFn(StageFn):
    """Turn each checkable record into a :class:`~pipelines.audit.label.LabelItem` (images
    read from the store); pass the others on with ``scores.label`` saying why not."""

    def __init__(self, store: ImageStore, model_id: str) -> None:
        self._store = store
        self._model_id = model_id

    def origin_of(self, record: Record) -> tuple[str, str]:
        return record_origin(record)

    def process_element(self, record: Record) -> Iterator[Any]:
        self.count("in")
        _gold, why = gold_label(record)
        if why:
            self.count("not_checkable")
            yield beam.pvalue.TaggedOutput(RECORDS, with_label(record, not_checked(why)))
            return
        images: dict[str, bytes] = {}
        for segment in record["question"]:
            path = segment.get("image")
            if not path or path in images:
                continue
            try:
                images[path] = self._store.get(path)
            except Exception as exc:  # missing: the item is not checked; EIO: stop the run
                if classify_os_error(exc, READING):
                    raise EnvironmentFault.from_os_error(exc, READING, path) from exc
                self.count("not_scored")
                reason = f"image {path} is not readable in the image store: {type(exc).__name__}"
                yield beam.pvalue.TaggedOutput(
                    RECORDS, with_label(record, not_checked(reason, self._model_id))
                )
                return
        item = label_item(record, images)
        yield beam.pvalue.TaggedOutput(KEYED, (record["id"], record))
        yield (record["id"], item)


class AttachLabelScoresFn(AttachScoresFn):
    """Join a record with its answer and write ``scores.label``."""

    def process_element(self, element: tuple[str, dict[str, list]]) -> Iterator[Record]:
        _key, group = element
        failures = list(group["failed"])
        answers = list(group["scores"])
        for record in group["records"]:
            if failures:
                scores = not_checked(f"the model raised on the item's batch: {failures[0]}"[:500],
                                     self._model_id)  # fmt: skip
            elif answers:
                scores = answers[0]
            else:
                scores = not_checked("no answer came back from the model", self._model_id)
            self.count("scored" if scores["scored"] else "not_scored")
            yield with_label(record, scores)


class ScoreLabelAgreement(RecordStage):
    """Ask a vision-language model each checkable item, with its images; write ``scores.label``.

    Args:
        handler: a label handler (:class:`pipelines.audit.label_handler.TransformersLabelHandler`
            or :class:`~pipelines.audit.label_handler.OpenAILabelHandler`), unkeyed.
        store: the build's image store, where the question's images are read from.

    Input: finished records with unique ids (after ``DropDuplicateIds``).

    Output: ``"records"``: every input record, ``scores.label`` written (``scored: true``
    with the answer, its confidence and suspicion, or ``scored: false`` with the reason);
    ``DEAD``: only an element that raised unexpectedly (a bug), stage ``score_label``.

    Counters (namespace ``ScoreLabelAgreement``): ``in``, ``scored``, ``not_scored``,
    ``not_checkable``; the handler adds RunInference's own.

    Example::

        scored = records | ScoreLabelAgreement(settings.model_handler(), ImageStore(output))
    """

    stage = STAGE_SCORE_LABEL
    fns = (PrepareLabelInputsFn, AttachLabelScoresFn)

    def __init__(self, handler: ModelHandler, store: ImageStore) -> None:
        super().__init__()
        self._handler = handler
        self._store = store

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        model_id = self._handler.model_id
        prepared = records | "PrepareLabelInputs" >> self.par_do(
            PrepareLabelInputsFn(self._store, model_id), main="inputs", tags=(RECORDS, KEYED)
        )
        inferred, dlq = (
            prepared.inputs
            | "RunLabelInference"
            >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling()
        )
        scores = inferred | "ScoresByKey" >> beam.MapTuple(lambda k, r: (k, r.inference))
        failed = dlq.failed_inferences | "FailedByKey" >> beam.FlatMap(failed_batch)
        joined = {
            "records": prepared[KEYED],
            "scores": scores,
            "failed": failed,
        } | "JoinLabelScores" >> beam.CoGroupByKey()
        attached = joined | "AttachLabelScores" >> self.par_do(AttachLabelScoresFn(model_id))
        return {
            RECORDS: (attached[RECORDS], prepared[RECORDS]) | "FlattenLabelled" >> beam.Flatten(),
            DEAD: (prepared[DEAD], attached[DEAD]) | "FlattenDead" >> beam.Flatten(),
        }
