"""Label-suspicion deciding stage: flag ``label_suspect`` on stored ``scores.label``.

Scoring (:class:`pipelines.audit.label_score.ScoreLabelAgreement`) and deciding are separate
stages, so the threshold changes without asking the model again. This module imports no
model code (a build imports it whether or not the stage runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from pipelines.audit.label import suspicion_of
from schemas.audit import add_flags, flag
from schemas.deadletter import STAGE_FLAG_LABEL
from schemas.records import Record
from schemas.stage import RecordStage, StageFn

LABEL_SUSPECT = "label_suspect"


def label_flag_reason(scores: dict[str, Any]) -> str:
    """The flag's reason in plain words, for annotators."""
    return (
        f"a vision-language model ({scores['model']}) answered {scores['predicted']!r} with "
        f"confidence {scores['confidence']:.2f}; the gold label is {scores['gold']!r}: "
        "check the answer key"
    )


class _FlagFn(StageFn):
    def __init__(self, threshold: float) -> None:
        self._threshold = threshold

    def process_element(self, record: Record) -> Iterator[Record]:
        self.count("in")
        label = (record.get("scores") or {}).get("label") or {}
        if not label.get("scored"):
            self.count("not_scored")
            yield record
            return
        suspicion = suspicion_of(record)
        if label.get("agree") is False and suspicion is not None and suspicion >= self._threshold:
            self.count("flagged")
            reason = label_flag_reason(label)
            yield add_flags(
                record,
                [flag(LABEL_SUSPECT, STAGE_FLAG_LABEL, reason, suspicion, self._threshold)],
            )
            return
        self.count("no_confidence" if suspicion is None else "not_flagged")
        yield add_flags(record, [])


class FlagLabelSuspect(RecordStage):
    """Flag ``label_suspect`` where the model disagrees with the gold label and a record's
    ``scores.label.suspicion >= threshold`` (at threshold 0: every disagreement with a
    confidence).

    Deciding is separate from scoring, so the threshold changes without asking the model
    again. The flag's ``figure`` is the suspicion (the model's confidence in an answer other
    than the gold label) and its ``threshold`` the one crossed. A checked record that is not
    flagged gets ``audit.flags`` as it was (``[]`` where it was null: audited, nothing found);
    an unchecked record passes unchanged. Nothing is dropped.

    Counters (namespace ``FlagLabelSuspect``): ``in``, ``flagged``, ``not_flagged``,
    ``no_confidence``, ``not_scored``.
    """

    stage = STAGE_FLAG_LABEL
    fns = (_FlagFn,)

    def __init__(self, threshold: float) -> None:
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"audit.label.threshold must be in [0, 1], got {threshold}")
        self._threshold = threshold

    def expand_stage(self, records: beam.PCollection[Record]) -> beam.pvalue.DoOutputsTuple:
        return records | "FlagLabelSuspect" >> self.par_do(_FlagFn(self._threshold))
