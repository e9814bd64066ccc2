"""The audit in a build and a release: every record of the sample build is audited, stats.json
holds the audit section, and the card and the report describe the audit and its limits."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipelines.audit import patterns as P
from pipelines.publish.audit_view import audit_summary, audit_tables, write_audit_plots
from tests.audit import planted


def _records(build):
    return [
        row
        for path in sorted((build / "records").glob("*.parquet"))
        for row in pq.read_table(path, columns=["id", "audit"]).to_pylist()
    ]


@pytest.mark.slow  # the session's sample build
def test_the_sample_build_audits_every_record_and_reports_it(sample_build):
    rows = _records(sample_build)
    audits = [json.loads(r["audit"]) if isinstance(r["audit"], str) else r["audit"] for r in rows]
    assert rows and all(isinstance(a, dict) and isinstance(a["flags"], list) for a in audits)
    stats = json.loads((sample_build / "stats.json").read_text("utf-8"))
    section = stats["audit"]
    assert section["stage"] == "audit_patterns"
    own = Counter(f["code"] for a in audits for f in a["flags"] if f["stage"] == "audit_patterns")
    assert section["flagged"]["by_code"] == {c: own.get(c, 0) for c in P.CODES}
    # stats.json counts the model-free stage's flags (the sample's blind LM adds its own)
    assert section["flagged"]["items"] == sum(
        1 for a in audits if any(f["stage"] == "audit_patterns" for f in a["flags"])
    )
    mc = section["multiple_choice"]["by_source"]["mathvista"]
    assert mc["items"] == sum(mc["position_counts"].values()) > 0


def test_a_planted_bias_shows_in_the_tables_and_plots(tmp_path):
    records = planted.always_position(120, pos=0) + planted.control_mc(120, seed=2, start=500)
    for r in records[120:]:
        r["field"] = "Physics"
    report, flags = P.audit(records)
    report["flagged"] = P.flag_counts(flags.values())
    published = [dict(r, audit={"flags": flags[r["id"]]}) for r in records]
    view = audit_summary(published, {"audit": report})
    assert view["released"] == {
        "records": 240,
        "audited": 240,
        "flagged": 120,
        "by_code": {"audit_patterns/answer_position_bias": 120},
    }
    tables = audit_tables(view)
    by_cell = {row[0]: row for row in tables["position_rows"]}
    assert by_cell["mathvista / Mathematics"][-1] == "yes"
    assert by_cell["mathvista / Physics"][-1] == "no"
    assert tables["biased_cells"] == 1
    assert write_audit_plots(view, str(tmp_path)) == ["audit_positions.png", "audit_heuristics.png"]
    assert (tmp_path / "audit_positions.png").stat().st_size > 1000


def test_no_audit_says_so():
    view = audit_summary([{"id": "x", "audit": None}], {})
    assert view["released"]["audited"] == 0
    assert audit_tables(view)["ran"] is False
