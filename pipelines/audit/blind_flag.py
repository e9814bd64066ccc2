"""The deciding side of the blind-answerability audit (no torch): flags from stored
``scores.blind``, and marking records not scored when the audit is off.

* :class:`FlagBlindAnswerable` adds ``blind_answerable`` to a multiple-choice item whose gold
  option beats every other by at least ``audit.blind.margin`` (nats per token), and
  ``answer_leakage`` to an open-ended item whose reference answer gains at least
  ``audit.blind.leakage_threshold`` nats per token from the question's text. A flag is
  evidence for review (``schemas.audit``): no record is dropped here. Thresholds change
  without re-scoring.
* :class:`SkipBlindScoring` writes ``scores.blind = {scored: false, reason}`` (``--no-blind``
  or ``audit.blind.enabled: false``) without loading a model.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from pipelines.audit.blind_items import MULTIPLE_CHOICE, not_scored_blind
from pipelines.transforms.inference import MarkScoresFn
from schemas.audit import AuditFlag, add_flags, flag
from schemas.deadletter import STAGE_AUDIT_BLIND, STAGE_SCORE_BLIND
from schemas.records import Record
from schemas.stage import RecordStage, StageFn

BLIND_ANSWERABLE = "blind_answerable"
ANSWER_LEAKAGE = "answer_leakage"
BLIND_ANSWERABLE_REASON = (
    "a text-only language model, reading the question without its images, prefers the gold "
    "option over every other option by at least the margin (nats per token)"
)
ANSWER_LEAKAGE_REASON = (
    "a text-only language model finds the reference answer much more likely once it reads "
    "the question's text, without the images: the text may give the answer away"
)


def blind_flags(record: Record, margin: float, leakage_threshold: float) -> list[AuditFlag] | None:
    """The flags of ``record`` from its ``scores.blind``; None when it was not scored."""
    blind = (record.get("scores") or {}).get("blind") or {}
    if not blind.get("scored"):
        return None
    if blind["kind"] == MULTIPLE_CHOICE:
        if blind["margin"] >= margin:
            return [
                flag(
                    BLIND_ANSWERABLE,
                    STAGE_AUDIT_BLIND,
                    BLIND_ANSWERABLE_REASON,
                    blind["margin"],
                    margin,
                )
            ]
        return []
    if blind["leakage"] >= leakage_threshold:
        return [
            flag(
                ANSWER_LEAKAGE,
                STAGE_AUDIT_BLIND,
                ANSWER_LEAKAGE_REASON,
                blind["leakage"],
                leakage_threshold,
            )
        ]
    return []


class _FlagFn(StageFn):
    def __init__(self, margin: float, leakage_threshold: float) -> None:
        self._margin = margin
        self._leakage = leakage_threshold

    def process_element(self, record: Record) -> Iterator[Record]:
        self.count("in")
        flags = blind_flags(record, self._margin, self._leakage)
        if flags is None:
            self.count("passed_not_scored")
            yield record
            return
        for f in flags:
            self.count(f"flagged_{f['code']}")
        yield add_flags(record, flags)


class FlagBlindAnswerable(RecordStage):
    """Flag records from their stored ``scores.blind`` (never drops one).

    Args:
        margin: ``audit.blind.margin``.
        leakage_threshold: ``audit.blind.leakage_threshold``.

    Input: records with ``scores.blind`` (from :class:`ScoreBlindAnswerability`).
    Output: ``"records"``: every record; a scored one has its flags added to ``audit.flags``
    (``audit`` becomes ``{flags: []}`` when nothing is found); ``DEAD``: only
    ``unexpected_error`` (stage ``audit_blind``).
    Counters (namespace ``FlagBlindAnswerable``): ``in``, ``passed_not_scored``,
    ``flagged_blind_answerable``, ``flagged_answer_leakage``.
    """

    stage = STAGE_AUDIT_BLIND
    fns = (_FlagFn,)

    def __init__(self, margin: float, leakage_threshold: float) -> None:
        super().__init__()
        self._margin = margin
        self._leakage = leakage_threshold

    def expand_stage(self, records: beam.PCollection[Record]) -> beam.pvalue.DoOutputsTuple:
        return records | "FlagBlind" >> self.par_do(_FlagFn(self._margin, self._leakage))


class SkipBlindScoring(RecordStage):
    """Mark every record ``scores.blind = {scored: false, reason}`` (the audit is off).

    Args:
        reason: why (``BlindConfig.skip_reason``).

    Output: ``records``, the same records with ``scores.blind`` replaced; ``DEAD``: only
    ``unexpected_error`` (stage ``score_blind``). Counters (namespace ``SkipBlindScoring``):
    ``out``.
    """

    stage = STAGE_SCORE_BLIND
    fns = (MarkScoresFn,)

    def __init__(self, reason: str) -> None:
        super().__init__()
        self._reason = reason

    def expand_stage(self, records: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return records | "MarkBlindNotScored" >> self.par_do(
            MarkScoresFn("blind", not_scored_blind(self._reason))
        )
