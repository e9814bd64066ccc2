"""FlagLabelSuspect decides on planted ``scores.label`` values (no model): the threshold, the
flag's fields, records it leaves alone, and that nothing is ever dropped."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audit.label import not_checked
from pipelines.audit.label_flag import FlagLabelSuspect, _FlagFn
from schemas.audit import flag
from schemas.deadletter import DEAD


def planted(rid: str, agree: bool | None, suspicion: float | None, audit=None) -> dict:
    label = {
        "scored": True,
        "model": "tiny",
        "reason": None,
        "method": "options",
        "gold": "A",
        "predicted": "A" if agree else "B",
        "agree": agree,
        "confidence": suspicion if suspicion is not None else None,
        "gold_probability": None,
        "suspicion": suspicion,
        "probabilities": None,
    }
    return {
        "id": rid,
        "provenance": {"source": "mathvista", "source_id": rid},
        "scores": {"clip": {"scored": False}, "label": label},
        "audit": audit,
    }


def _codes(record) -> list[str]:
    return [f["code"] for f in ((record.get("audit") or {}).get("flags") or [])]


def test_flags_at_or_above_the_threshold_only_where_the_model_disagrees():
    fn = _FlagFn(0.6)
    fn.stage_cls = FlagLabelSuspect
    (high,) = fn.process_element(planted("high", False, 0.9))
    (edge,) = fn.process_element(planted("edge", False, 0.6))
    (low,) = fn.process_element(planted("low", False, 0.59))
    (agrees,) = fn.process_element(planted("agrees", True, 0.0))
    (blind,) = fn.process_element(planted("blind", False, None))
    assert _codes(high) == _codes(edge) == ["label_suspect"]
    assert _codes(low) == _codes(agrees) == _codes(blind) == []
    assert low["audit"] == {"flags": []}, "checked and nothing found"
    (raised,) = high["audit"]["flags"]
    assert (raised["stage"], raised["figure"], raised["threshold"]) == (
        "flag_label", 0.9, 0.6,
    )  # fmt: skip
    assert "answered 'B' with confidence 0.90; the gold label is 'A'" in raised["reason"]


def test_unchecked_records_pass_unchanged_and_other_flags_stay():
    fn = _FlagFn(0.1)
    fn.stage_cls = FlagLabelSuspect
    unchecked = planted("u", None, None)
    unchecked["scores"]["label"] = not_checked("no single gold label to check")
    assert list(fn.process_element(unchecked)) == [unchecked]
    other = flag("answer_in_question", "AuditAnswerPatterns", "the answer is in the question")
    (both,) = fn.process_element(planted("o", False, 0.5, audit={"flags": [other]}))
    assert _codes(both) == ["answer_in_question", "label_suspect"]
    again = next(iter(fn.process_element(both)))
    assert again == both, "a re-run replaces its flag, never stacks it"


def test_the_stage_drops_nothing_and_counts(tmp_path):
    records = [planted("a", False, 0.8), planted("b", True, 0.0), planted("c", False, None)]
    p = TestPipeline()
    out = p | beam.Create(records) | FlagLabelSuspect(0.5)
    assert_that(
        out.records | beam.Map(lambda r: (r["id"], _codes(r))),
        equal_to([("a", ["label_suspect"]), ("b", []), ("c", [])]),
        label="records",
    )
    assert_that(out[DEAD], equal_to([]), label="dead")
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.namespace == "FlagLabelSuspect"
    }
    assert counters == {"in": 3, "flagged": 1, "not_flagged": 1, "no_confidence": 1}


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_a_threshold_outside_zero_to_one_is_refused(threshold):
    with pytest.raises(ValueError, match=r"audit\.label\.threshold"):
        FlagLabelSuspect(threshold)
