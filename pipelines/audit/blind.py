"""Scoring stage of the blind-answerability audit: a text-only language model scores each item
without its images (Beam RunInference, like CLIP scoring; deciding is
:class:`pipelines.audit.blind_flag.FlagBlindAnswerable`).

    records ─► PrepareBlindInputs ─► RunInference(KeyedModelHandler(BlindLMHandler))
       │          │ (tokenize the texts to score:          │ (per-token log-probabilities)
       │          │  :func:`blind_item`)                   ▼
       └─ keyed records ─────────────► CoGroupByKey(record id) ─► AttachBlindScores ─► records

What is scored, and the formulas, are in :mod:`pipelines.audit.blind_items`; the fixed-shape
rule that makes a score independent of its batch in :mod:`pipelines.audit.blind_model`. The
record keeps everything it had; only ``scores.blind`` changes. A record that cannot be scored
blind (no question text, no reference text, a gold label that is not an option), or whose
batch made the model raise, passes on with ``scored: false`` and the reason: an audit never
drops an item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipelines.audit.blind_handler import BlindLMHandler
from pipelines.audit.blind_items import blind_item, blind_scores, not_scored_blind
from pipelines.audit.blind_model import BlindSpec, blind_spec, encode, load_tokenizer
from pipelines.config import BlindConfig
from pipelines.transforms.inference import (
    AttachScoresFn,
    KeyedModelHandler,
    RunInference,
    failed_batch,
    record_origin,
)
from schemas.deadletter import DEAD, STAGE_SCORE_BLIND
from schemas.records import Record, with_scores
from schemas.stage import RecordStage, StageFn

RECORDS = "records"
KEYED = "keyed_records"


def _with_blind(record: Record, value: dict[str, Any]) -> Record:
    return with_scores(record, "blind", value)


class PrepareBlindInputsFn(StageFn):
    """Tokenize the texts to score of each record (the tokenizer is loaded in ``setup``)."""

    def __init__(self, spec: BlindSpec) -> None:
        self._spec = spec

    def setup(self) -> None:
        self._tokenizer = load_tokenizer(self._spec)

    def origin_of(self, record: Record) -> tuple[str, str]:
        return record_origin(record)

    def process_element(self, record: Record) -> Iterator[Any]:
        self.count("in")
        try:
            item = blind_item(record)
        except ValueError as exc:
            self.count("not_scored")
            yield TaggedOutput(RECORDS, _with_blind(record, not_scored_blind(str(exc))))
            return
        key = record["id"]
        inputs = []
        for c in item.continuations:
            encoded = encode(self._tokenizer, c.context, c.continuation, self._spec.max_length)
            inputs.append((key, encoded._replace(ref=c.ref)))
        yield TaggedOutput(KEYED, (key, record))
        self.count("texts", len(inputs))
        yield from inputs


class AttachBlindScoresFn(AttachScoresFn):
    """Join a record with its continuations' log-probabilities and write ``scores.blind``."""

    def process_element(self, element: tuple[str, dict[str, list]]) -> Iterator[Record]:
        _key, group = element
        failures = sorted(group["failed"])
        results = {ref: (lp, truncated) for ref, truncated, lp in group["results"]}
        for record in group["records"]:
            if failures:
                self.count("inference_failed")
                reason = f"the model raised on this item's batch ({failures[0]})"
                yield _with_blind(record, not_scored_blind(reason))
                continue
            try:
                scores = blind_scores(blind_item(record), results, self._model_id)
            except KeyError as exc:
                self.count("result_missing")
                yield _with_blind(record, not_scored_blind(f"no model result for {exc}"))
                continue
            self.count("scored")
            yield _with_blind(record, scores)


class ScoreBlindAnswerability(RecordStage):
    """Score every record with a text-only language model, without its images.

    Args:
        config: the ``audit.blind`` block (:class:`pipelines.config.BlindConfig`; enabled).

    Input:
        ``PCollection`` of records with unique ids (``DropDuplicateIds`` runs before).

    Output:
        ``"records"``: every input record, with ``scores.blind`` written (``scored: true`` with
        the scores, or ``scored: false`` with the reason); ``DEAD``: only
        ``unexpected_error`` (a bug), stage ``score_blind``.

    Counters (namespace ``ScoreBlindAnswerability``): ``in``, ``texts``, ``scored``,
    ``not_scored``, ``inference_failed``, ``result_missing``; the handler adds RunInference's
    own (namespace ``BlindLMHandler``).

    Example::

        scored = records | "ScoreBlindAnswerability" >> ScoreBlindAnswerability(config.blind)
    """

    stage = STAGE_SCORE_BLIND
    fns = (PrepareBlindInputsFn, AttachBlindScoresFn)

    def __init__(self, config: BlindConfig) -> None:
        super().__init__()
        self._config = config
        self._spec = blind_spec(config)

    def model_handler(self) -> BlindLMHandler:
        """The (unkeyed) RunInference handler of this stage."""
        return BlindLMHandler(self._spec, max_batch_size=self._config.max_batch_size)

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        prepared = records | "PrepareBlindInputs" >> self.par_do(
            PrepareBlindInputsFn(self._spec), main="inputs", tags=(RECORDS, KEYED)
        )
        handler = KeyedModelHandler(self.model_handler())
        inferred, dlq = (
            prepared.inputs | "RunInference" >> RunInference(handler).with_exception_handling()
        )
        results = inferred | "ResultByKey" >> beam.MapTuple(
            lambda key, r: (key, (r.example[0], r.example[1], r.inference))
        )
        failed = dlq.failed_inferences | "FailedByKey" >> beam.FlatMap(failed_batch)
        joined = {
            "records": prepared[KEYED],
            "results": results,
            "failed": failed,
        } | "JoinResults" >> beam.CoGroupByKey()
        attached = joined | "AttachBlindScores" >> self.par_do(
            AttachBlindScoresFn(self._spec.model_id)
        )
        return {
            RECORDS: (attached[RECORDS], prepared[RECORDS]) | "FlattenScored" >> beam.Flatten(),
            DEAD: (prepared[DEAD], attached[DEAD]) | "FlattenDead" >> beam.Flatten(),
        }
