"""Routing of validity-audit flags to annotators, without a server: the ``--priority audit``
sample and order, the flags shown in plain words (escaped), the metadata annotators sort and
filter by, the per-flag outcome of a decision, and publish's per-category counts."""

from __future__ import annotations

import json
from collections import Counter

from annotation.pull import Annotated, audit_counts, decide
from annotation.push import select_records, selection_key
from annotation.render import render_record
from annotation.rubric import load_rubric
from annotation.settings import annotation_link, item_sizes, record_metadata
from pipelines.publish.inputs import Annotations, _check_decision, apply_decisions
from pipelines.publish.summary import audit_review_rows
from schemas.audit import add_flags, flag

HOSTILE = '<script>window.top.__pwned=1</script><b onmouseover="x()">'


def _record(rid: str, category: str = "PBL", field: str = "Health", flags=None, **over) -> dict:
    rec = {
        "id": rid,
        "category": category,
        "field": field,
        "subfield": "Mental Health",
        "question_format": "open_ended",
        "question": [{"text": "How?", "image": None}],
        "answer": [{"text": "Like so.", "image": None}],
        "options": None,
        "instruction": None,
        "unit": None,
        "provenance": {"source": "wikihow"},
        "scores": {"clip": {"scored": True, "min_score": 0.3}},
        "audit": None,
        **over,
    }
    return add_flags(rec, flags) if flags is not None else rec


def _longest(reason: str = "The reference answer is the longest option.") -> dict:
    return flag("longest_option", "audit_answer_patterns", reason, 0.91, 0.8)


def _blind() -> dict:
    return flag("blind_answerable", "audit_blind", "A text-only model answers it.", 0.7, 0.5)


def test_priority_audit_takes_every_flagged_record_then_the_stratified_rest():
    recs = [
        _record(
            f"PBL_w_{i}",
            field="Health" if i % 2 else "Finance",
            flags=[_longest()] if i in (1, 3, 5, 8) else [],
        )
        for i in range(10)
    ]
    keys = [selection_key(r) for r in recs]
    assert [k["n_flags"] for k in keys].count(1) == 4
    skipped = Counter()
    plain = select_records(keys, "stratified", per_cell=2, skipped=skipped)
    assert len(plain) == 4 and skipped["not_sampled"] == 6
    skipped = Counter()
    chosen = select_records(keys, "stratified", per_cell=2, priority="audit", skipped=skipped)
    ids = [r["id"] for r in chosen]
    # Health has 3 flagged (1, 3, 5): all go, over its size; Finance has 1 flagged (8) + 1 more
    assert set(ids) >= {"PBL_w_1", "PBL_w_3", "PBL_w_5", "PBL_w_8"}
    assert Counter(r["field"] for r in chosen) == {"Health": 3, "Finance": 2}
    assert ids[:4] == ["PBL_w_1", "PBL_w_3", "PBL_w_5", "PBL_w_8"]  # flagged first
    assert skipped["not_sampled"] == 5
    everything = select_records(keys, "all", priority="audit")
    assert [r["id"] for r in everything][:4] == ids[:4] and len(everything) == 10
    near = select_records(
        keys, "near-threshold", thresholds={"*": 0.9}, margin=0.01, priority="audit"
    )
    assert [r["id"] for r in near] == ids[:4]  # none is near 0.9; the flagged go anyway


def test_flags_are_shown_in_plain_words_and_escaped():
    rec = _record("PBL_w_1", flags=[_longest(HOSTILE), _blind()])
    html = render_record(rec, lambda p: p)
    assert "Audit flags: evidence for you to check, not verdicts" in html
    # stored order, (stage, code): audit_answer_patterns before audit_blind
    assert "<b>flag 1</b> (longest option, raised by audit_answer_patterns): " in html
    assert "<b>flag 2</b> (blind answerable, raised by audit_blind): A text-only" in html
    assert "measured 0.91; threshold 0.8" in html
    assert "<script" not in html and 'onmouseover="' not in html
    assert "&lt;script&gt;window.top.__pwned=1&lt;/script&gt;" in html
    assert "Audit flags" not in render_record(_record("PBL_w_2", flags=[]), lambda p: p)
    assert "Audit flags" not in render_record(_record("PBL_w_3"), lambda p: p)


def test_metadata_counts_flags_for_sorting_and_names_their_codes():
    meta = record_metadata(_record("PBL_w_1", flags=[_longest(), _blind()]))
    assert meta["audit_flags"] == 2
    assert meta["audit_codes"] == ["longest_option", "blind_answerable"]  # flag 1 first
    clean = record_metadata(_record("PBL_w_2", flags=[]))
    assert clean["audit_flags"] == 0 and "audit_codes" not in clean  # audited, nothing found
    assert "audit_flags" not in record_metadata(_record("PBL_w_3"))  # not audited
    assert item_sizes(_record("PBL_w_1", flags=[_longest(), _blind()]))["flag"] == 2
    link = annotation_link("http://127.0.0.1:6900/", "abc")
    assert (
        link == "http://127.0.0.1:6900/dataset/abc/annotation-mode?sort=metadata.audit_flags.desc"
    )


def _flagged(answers: dict[str, list[str]], verdict: str = "accept") -> Annotated:
    rec = Annotated("PBL_w_1", "PBL", "Health", "Mental Health",
                    flags=["blind_answerable", "longest_option"])  # fmt: skip
    base = {"verdict": verdict, "answer_quality": 4, "correct_field": "Health",
            "correct_subfield": "Mental Health"}  # fmt: skip
    rec.answers = {u: {**base, "audit_flags_hold": ticks} for u, ticks in answers.items()}
    return rec


def test_each_flag_is_confirmed_cleared_or_split_by_the_submitted_responses():
    rubric = load_rubric()
    ids = {"u1": "ann-1", "u2": "ann-2", "u3": "ann-3"}
    rec = _flagged({"u1": ["flag_1", "flag_2"], "u2": ["flag_1"], "u3": []})
    decision, _ = decide(rec, rubric, ids=ids)
    assert decision["audit"] == {
        "flags": [
            {"flag": 1, "code": "blind_answerable", "outcome": "confirmed",
             "confirmed_by": ["ann-1", "ann-2"], "cleared_by": ["ann-3"]},
            {"flag": 2, "code": "longest_option", "outcome": "cleared",
             "confirmed_by": ["ann-1"], "cleared_by": ["ann-2", "ann-3"]},
        ]
    }  # fmt: skip
    split = decide(_flagged({"u1": ["flag_2"], "u2": None}), rubric)[0]
    assert [f["outcome"] for f in split["audit"]["flags"]] == ["cleared", "split"]
    assert _check_decision(decision) is None
    unflagged = _flagged({"u1": [], "u2": []})
    unflagged.flags = []
    assert "audit" not in decide(unflagged, rubric)[0]
    counts = audit_counts([json.dumps(decision)])
    assert counts == {
        "PBL": {
            "blind_answerable": {"reviewed": 1, "confirmed": 1, "cleared": 0, "split": 0},
            "longest_option": {"reviewed": 1, "confirmed": 0, "cleared": 1, "split": 0},
        }
    }


def test_publish_counts_flagged_reviewed_confirmed_and_removed_per_category():
    recs = [
        _record("PBL_w_1", flags=[_longest()]),  # reviewed, confirmed, rejected: removed
        _record("PBL_w_2", flags=[_longest()]),  # reviewed, cleared, accepted
        _record("PBL_w_3", flags=[_longest(), _blind()]),  # flagged, never judged
        _record("SA_v_1", "SA", "Literature", flags=[_blind()]),  # vetoed: removed
        _record("SA_v_2", "SA", "Literature", flags=[]),
    ]

    def review(code: str, outcome: str) -> dict:
        return {"flags": [{"flag": 1, "code": code, "outcome": outcome}]}

    decisions = {
        "PBL_w_1": {"id": "PBL_w_1", "verdict": "reject", "audit": review("longest_option",
                                                                         "confirmed")},
        "PBL_w_2": {"id": "PBL_w_2", "verdict": "accept", "audit": review("longest_option",
                                                                         "cleared")},
        "SA_v_1": {"id": "SA_v_1", "verdict": "accept", "veto": {"by": ["ann-1"]},
                   "audit": review("blind_answerable", "split")},
        "SA_v_2": {"id": "SA_v_2", "verdict": "accept"},
    }  # fmt: skip
    for d in decisions.values():
        assert _check_decision(d) is None
    assert "'audit'" in _check_decision({"id": "x", "verdict": "accept", "audit": {"flags": [1]}})
    ann = Annotations(decisions, None, [], "x")
    kept, _ = apply_decisions(recs, ann, require=False)
    assert sorted(r["id"] for r in kept) == ["PBL_w_2", "PBL_w_3", "SA_v_2"]
    rows = audit_review_rows(ann.tally["audit"])
    table = {(r["category"], r["code"]): r for r in rows}
    assert table[("PBL", "longest_option")] == {
        "category": "PBL", "code": "longest_option", "flagged": 3, "reviewed": 2,
        "confirmed": 1, "cleared": 1, "split": 0, "removed": 1,
    }  # fmt: skip
    assert table[("PBL", "blind_answerable")]["reviewed"] == 0
    assert table[("SA", "blind_answerable")]["split"] == 1
    assert table[("SA", "blind_answerable")]["removed"] == 1
    assert rows[-1]["category"] == "total" and rows[-1]["flagged"] == 5
    assert rows[-1]["removed"] == 2
