"""AuditAnswerPatterns and DropFlagged on Beam's TestPipeline: the same flags and report as the
pure audit, every record audited, and drops only for the configured codes."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audit import patterns as P
from pipelines.audit.stages import AuditAnswerPatterns, DropFlagged
from pipelines.config import AuditConfig
from schemas.deadletter import DEAD
from tests.audit import planted


def corpus() -> list[dict]:
    return (
        planted.always_position(60, pos=0, start=0)
        + planted.control_mc(40, seed=3, start=100)
        + planted.control_oe(50, start=200)
        + [
            planted.oe_record(300 + i, f"How many red balls are in box {i}?", ["4"])
            for i in range(25)
        ]
    )


def _flags_of(record: dict) -> tuple:
    return (record["id"], json.dumps(record["audit"], sort_keys=True))


def test_the_stage_writes_the_pure_audits_flags_and_report():
    records = corpus()
    config = AuditConfig.from_block({"min_cell_items": 20})
    report, flags = P.audit(records, config)
    expected = [(r["id"], json.dumps({"flags": flags[r["id"]]}, sort_keys=True)) for r in records]
    assert report["flagged"]["by_code"]["answer_position_bias"] == 60
    assert report["flagged"]["by_code"]["frequent_answer"] == 25
    with TestPipeline() as p:
        out = p | beam.Create(records) | AuditAnswerPatterns(config)
        assert_that(out.records | beam.Map(_flags_of), equal_to(expected), label="flags")
        assert_that(out[DEAD], equal_to([]), label="dead")
        assert_that(out.report, equal_to([{"audit": report}]), label="report")


def test_an_unreadable_record_is_a_dead_letter_not_a_crash():
    records = planted.control_mc(5)
    broken = dict(records[0], id="MSR_mathvista_broken", options="not a list")
    with TestPipeline() as p:
        out = (
            p | beam.Create([*records[1:], broken]) | AuditAnswerPatterns(AuditConfig.from_block())
        )
        assert_that(
            out.records | beam.Map(lambda r: r["audit"]),
            equal_to([{"flags": []}] * 4),
            label="records",
        )
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"])),
            equal_to([("audit_patterns", "unexpected_error", "0")]),
            label="dead",
        )


def test_drop_flagged_drops_only_the_configured_codes():
    records = corpus()
    _, flags = P.audit(records, AuditConfig.from_block())
    audited = [dict(r, audit={"flags": flags[r["id"]]}) for r in records]
    position = sorted(
        r["id"]
        for r in audited
        if flags[r["id"]] and any(f["code"] == "answer_position_bias" for f in flags[r["id"]])
    )
    assert len(position) == 60
    with TestPipeline() as p:
        created = p | beam.Create(audited)
        kept = created | "DropPosition" >> DropFlagged(["answer_position_bias"])
        assert_that(
            kept.records | beam.Map(lambda r: r["id"]),
            equal_to(sorted(set(r["id"] for r in audited) - set(position))),
            label="kept",
        )
        assert_that(
            kept[DEAD]
            | beam.Map(lambda d: (d["stage"], d["reason"], json.loads(d["detail"])["codes"])),
            equal_to([("drop_flagged", "audit_flagged", ["answer_position_bias"])] * 60),
            label="dead",
        )
        none = created | "DropNothing" >> DropFlagged([])
        assert_that(
            none.records | beam.combiners.Count.Globally(), equal_to([len(audited)]), label="all"
        )
