"""The Beam stages of the model-free audit: ``AuditAnswerPatterns`` and ``DropFlagged``.

``AuditAnswerPatterns`` scores: it adds ``audit.flags`` to every record (``{"flags": []}``
when nothing is found) and a ``report`` for stats.json (``audit``). ``DropFlagged`` decides:
it drops the records carrying a flag code named in ``audit.drop_flags`` (default none), each as
a dead letter. Scoring and deciding stay apart, so the threshold can change without
re-auditing, and a flag alone never removes an item.

The statistics are :mod:`pipelines.audit.patterns`'s; this module only spreads them over a
build: per-cell counts are combined over the whole PCollection (``CombinePerKey``), answer
and answer-segment texts are counted with ``Count.PerElement``, and the report made from them
reaches the flagging ``ParDo`` as a side input. The output is deterministic: the report sorts
everything it lists, and each record's flags depend only on the record and the report.

What must fit in one worker's memory: the report (one entry per cell), the open-ended answers
held by two items or more, per cell (the most-frequent-answer baseline's table), and the
repeated answer texts (those in at least ``repeated_answer_min_items`` items): side inputs of
every worker that flags.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipelines.audit import patterns
from pipelines.config import AuditConfig
from schemas.audit import add_flags, flag_codes
from schemas.deadletter import DEAD, STAGE_AUDIT_PATTERNS, STAGE_DROP_FLAGGED, origin
from schemas.records import Record
from schemas.stage import RecordStage, StageFn, StageReason


def _view_or_none(record: Record, settings: AuditConfig) -> list[dict[str, Any]]:
    """The record's view, or nothing when it cannot be read (the flagging step then makes
    the record a dead letter, with the exception)."""
    try:
        return [patterns.item_view(record, settings)]
    except Exception:
        return []


class SumCountersFn(beam.CombineFn):
    """Adds up Counters (a cell's statistics)."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, counts: Counter) -> Counter:
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs) -> Counter:
        out: Counter = Counter()
        for acc in accs:
            out.update(acc)
        return out

    def extract_output(self, acc: Counter) -> Counter:
        return acc


class FlagCountsFn(SumCountersFn):
    """Counts flagged items, overall and per code (:func:`patterns.flag_counts`)."""

    def add_input(self, acc: Counter, codes: list[str]) -> Counter:
        acc["__items__"] += bool(codes)
        acc.update(codes)
        return acc

    def extract_output(self, acc: Counter) -> dict[str, Any]:
        return {
            "items": acc["__items__"],
            "by_code": {code: acc.get(code, 0) for code in patterns.CODES},
        }


class FlagItemsFn(StageFn):
    """Adds the audit's flags to each record (``audit`` set on every record)."""

    def __init__(self, settings: AuditConfig) -> None:
        self._settings = settings
        # (id of the report side input, the report by cell, leave-one-out hits per cell)
        self._indexed: tuple[int, dict[str, Any], dict[str, Any]] | None = None

    def process_element(
        self,
        record: Record,
        report: dict[str, Any],
        answer_counts: dict[str, dict[str, int]],
        repeated: dict[str, int],
    ) -> Iterator[Record]:
        self.count("in")
        if self._indexed is None or self._indexed[0] != id(report):
            self._indexed = (id(report), patterns.index_report(report))
        view = patterns.item_view(record, self._settings)
        flags = patterns.item_flags(view, self._indexed[1], answer_counts, repeated, self._settings)
        for f in flags:
            self.count("flag_" + f["code"])
        self.count("flagged" if flags else "not_flagged")
        self.count("out")
        yield add_flags(record, flags)


class AuditAnswerPatterns(RecordStage):
    """The model-free audit (:mod:`pipelines.audit.patterns`) over a whole build.

    Args:
        config: the ``audit`` block.
    Input: valid ``Record``. Output: ``records`` (every record, ``audit.flags`` added),
    ``DEAD`` (a record the audit cannot read: ``unexpected_error``), and ``report``: one
    ``{"audit": {...}}`` dict for stats.json, with ``flagged`` (flagged items, per code).
    """

    stage = STAGE_AUDIT_PATTERNS
    outputs = ("report",)
    fns = (FlagItemsFn,)

    def __init__(self, config: AuditConfig) -> None:
        super().__init__()
        self._settings = config

    def expand_stage(self, records: beam.PCollection[Record]) -> dict[str, beam.PCollection]:
        settings = self._settings
        views = records | "ViewItems" >> beam.FlatMap(_view_or_none, settings)
        cells = (
            views
            | "CountItem" >> beam.Map(patterns.count_view)
            | "SumCells" >> beam.CombinePerKey(SumCountersFn())
            | "GatherCells" >> beam.combiners.ToDict()
        )
        answer_counts = (
            views
            | "AnswerKeys"
            >> beam.FlatMap(lambda v: [k] if (k := patterns.answer_key(v)) is not None else [])
            | "CountAnswers" >> beam.combiners.Count.PerElement()
            | "HeldByTwo" >> beam.Filter(lambda kv: kv[1] >= 2)
            | "GatherAnswers" >> beam.combiners.ToList()
            | "AnswerTable" >> beam.Map(patterns.answer_table)
        )
        min_items = settings.repeated_answer_min_items
        repeated = (
            views
            | "RepeatKeys" >> beam.FlatMap(lambda v: v.get("repeat_keys", []))
            | "CountRepeats" >> beam.combiners.Count.PerElement()
            | "Repeated" >> beam.Filter(lambda kv: kv[1] >= min_items)
            | "GatherRepeated" >> beam.combiners.ToDict()
        )
        answers_side = beam.pvalue.AsSingleton(answer_counts)
        repeated_side = beam.pvalue.AsSingleton(repeated)
        report = cells | "Analyse" >> beam.Map(
            patterns.analyse, answers_side, repeated_side, settings
        )
        flagged = records | "FlagItems" >> self.par_do(
            FlagItemsFn(settings),
            beam.pvalue.AsSingleton(report),
            answers_side,
            repeated_side,
        )
        counts = (
            flagged.records
            | "OwnCodes"
            >> beam.Map(
                lambda r: sorted(
                    {f["code"] for f in r["audit"]["flags"] if f["stage"] == patterns.STAGE}
                )
            )
            | "CountFlags" >> beam.CombineGlobally(FlagCountsFn())
        )
        section = report | "AuditReport" >> beam.Map(
            lambda rep, n: {"audit": {**rep, "flagged": n}}, beam.pvalue.AsSingleton(counts)
        )
        return {"records": flagged.records, DEAD: flagged[DEAD], "report": section}


class DropFlaggedReason(StageReason):
    """Why ``DropFlagged`` drops a record."""

    AUDIT_FLAGGED = (
        "audit_flagged",
        "the record carries an audit flag whose code `audit.drop_flags` names (default: none, "
        'so nothing is dropped); the detail is JSON: `{"id", "codes"}`',
    )


class _DropFlaggedFn(StageFn):
    def __init__(self, codes: tuple[str, ...]) -> None:
        self._codes = frozenset(codes)

    def process_element(self, record: Record) -> Iterator[Record | TaggedOutput]:
        self.count("in")
        hit = sorted(set(flag_codes(record)) & self._codes)
        if hit:
            source, source_id = origin(record)
            detail = json.dumps({"id": record["id"], "codes": hit}, sort_keys=True)
            yield self.reject(DropFlagged.Reason.AUDIT_FLAGGED, source, source_id, detail)
            return
        self.count("out")
        yield record


class DropFlagged(RecordStage):
    """The audit's one decision: drop the records with a flag code in ``codes``.

    Args:
        codes: the ``audit.drop_flags`` codes (empty: every record passes).
    """

    stage = STAGE_DROP_FLAGGED
    Reason = DropFlaggedReason
    fns = (_DropFlaggedFn,)

    def __init__(self, codes: tuple[str, ...] | list[str]) -> None:
        super().__init__()
        self._codes = tuple(codes)

    def expand_stage(self, records: beam.PCollection[Record]):
        return records | self.par_do(_DropFlaggedFn(self._codes))
