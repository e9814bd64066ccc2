"""The rubric as data, the settings generated from it, the renderer, routing and decisions.

Pure tests (no server): the default rubric, invalid rubrics, settings, HTML escaping,
image URLs, the read-only image server, sample selection and the decision rule.
"""

from __future__ import annotations

import copy
import hashlib
import urllib.error
import urllib.request
from collections import Counter

import pytest
import yaml

from annotation.images import (
    ImageServerError,
    export_images,
    start_image_server,
    stop_image_server,
    url_builder,
)
from annotation.pull import Annotated, decide, decide_verdict
from annotation.push import PushError, select_records
from annotation.render import render_record
from annotation.rubric import DEFAULT_RUBRIC, RubricError, load_rubric, parse_rubric
from annotation.settings import argilla_record, record_metadata, sized_labels
from schemas.taxonomy import taxonomy

SHA = "ab" * 32
HOSTILE = '<script>window.top.__pwned=1</script><img src=x onerror="window.top.__pwned=1">'


def _record(rid: str = "SA_vist_test_1", category: str = "SA", **over) -> dict:
    rec = {
        "id": rid,
        "category": category,
        "field": "Literature",
        "subfield": "Everyday Life",
        "question_format": "open_ended",
        "question": [
            {"text": "Continue: " + HOSTILE, "image": None},
            {"text": "a", "image": f"images/{SHA}.png"},
        ],
        "answer": [{"text": "b & c", "image": f"images/{'cd' * 32}.jpg"}],
        "options": None,
        "instruction": None,
        "unit": None,
        "provenance": {"source": "vist"},
        "scores": {"clip": {"scored": True, "min_score": 0.25}},
    }
    rec.update(over)
    return rec


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_RUBRIC.read_text())


def test_default_rubric_covers_every_category():
    rubric = load_rubric()
    assert set(rubric.categories) == {"SA", "PBL", "MSR", "IF"}
    assert rubric.overlap == 2 and rubric.score_question == "answer_quality"
    for category in rubric.categories:
        names = [q.name for q in rubric.for_category(category)]
        for name in (
            "question_clarity",
            "answer_quality",
            "coherence" if category != "IF" else "image_relevance",
            "correct_field",
            "correct_subfield",
            "harmful",
            "verdict",
            "comment",
        ):
            assert name in names, (category, name)
    assert rubric.questions["answer_quality"].values == tuple(range(7))  # MMIE's 0-6 scale
    assert rubric.questions["answer_quality"].level == "ordinal"
    assert rubric.questions["verdict"].labels == ("accept", "fix", "reject")
    assert rubric.questions["comment"].level is None and not rubric.questions["comment"].required
    assert rubric.questions["correct_field"].labels == tuple(taxonomy())
    subfields = {s for subs in taxonomy().values() for s in subs}
    assert set(rubric.questions["correct_subfield"].labels) == subfields
    if_names = rubric.categories["IF"]
    assert {"subinstructions_answerable", "unanswerable_subinstructions", "weights_fit"} <= set(
        if_names
    )
    assert "weights_fit" not in rubric.categories["SA"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["categories"]["SA"].append("nope"), "does not define"),
        (lambda d: d["questions"]["verdict"].update(labels=["yes", "no"]), "accept"),
        (lambda d: d["questions"].update(field={"kind": "text", "title": "x"}), "reserved"),
        (lambda d: d["questions"]["answer_quality"].pop("values"), "values"),
        (lambda d: d.update(score_question="comment"), "rating"),
        (lambda d: d["categories"].update(XX=["verdict"]), "XX"),
        (lambda d: d.update(audit_question="irrelevant_images"), "flag_1"),
        (lambda d: d["questions"]["audit_flags_hold"].update(required=True), "audit_question"),
        (lambda d: d["questions"].update(audit_codes={"kind": "text", "title": "x"}), "reserved"),
    ],
)
def test_invalid_rubrics_are_refused(mutate, message):
    data = _raw()
    mutate(data)
    with pytest.raises(RubricError, match=message):
        parse_rubric(data)


def test_missing_rubric_file_says_what_to_do(tmp_path):
    with pytest.raises(RubricError, match="--rubric"):
        load_rubric(tmp_path / "none.yaml")


def test_render_escapes_source_text_and_inlines_images_in_order():
    html = render_record(_record(), url_builder("http://127.0.0.1:1"))
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;window.top.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;window.top.__pwned=1&quot;&gt;" in html
    assert "b &amp; c" in html
    first = html.index(f"http://127.0.0.1:1/images/{SHA}.png")
    second = html.index(f"http://127.0.0.1:1/images/{'cd' * 32}.jpg")
    assert html.index("Continue:") < first < html.index("Reference answer") < second
    assert "image 1" in html and "image 2" in html


def test_render_if_items_lists_sub_instructions():
    rec = _record(
        "IF_coco_val_1",
        "IF",
        instruction={
            "complexity": "basic",
            "components": [
                {"text": "Describe <b>it</b>", "type": "describe", "weight": 6, "facts": {}},
                {"text": "in two sentences", "type": "length_limit", "weight": 4, "facts": {}},
            ],
        },
        options=[{"label": "A", "text": "<i>x</i>"}, {"label": "B", "text": "y"}],
    )
    html = render_record(rec, url_builder("https://cdn.example.org/v1/"))
    assert "Describe &lt;b&gt;it&lt;/b&gt;" in html and "6/10" in html and "4/10" in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html
    assert f"https://cdn.example.org/v1/images/{SHA}.png" in html


def test_image_urls_for_buckets_and_bad_bases():
    assert (
        url_builder("gs://b/p")(f"images/{SHA}.png")
        == f"https://storage.googleapis.com/b/p/images/{SHA}.png"
    )
    assert (
        url_builder("s3://b/p/")(f"images/{SHA}.png")
        == f"https://b.s3.amazonaws.com/p/images/{SHA}.png"
    )
    with pytest.raises(ImageServerError):
        url_builder("file:///etc")
    with pytest.raises(ImageServerError):
        url_builder("http://x")("../../etc/passwd")


def test_argilla_record_carries_metadata_suggestions_and_a_stable_hash():
    rubric = load_rubric()
    url = url_builder("http://127.0.0.1:1")
    rec = argilla_record(_record(), rubric, url)
    assert rec.id == "SA_vist_test_1"
    assert rec.metadata["source"] == "vist" and rec.metadata["clip_min_score"] == 0.25
    assert rec.metadata["n_images"] == 2
    suggested = {s.question_name: s.value for s in rec.suggestions}
    assert suggested == {"correct_field": "Literature", "correct_subfield": "Everyday Life"}
    assert argilla_record(_record(), rubric, url).metadata["push_sha"] == rec.metadata["push_sha"]
    changed = argilla_record(_record(subfield="Family and Friends"), rubric, url)
    assert changed.metadata["push_sha"] != rec.metadata["push_sha"]
    unscored = record_metadata(_record(scores={"clip": {"scored": False, "min_score": None}}))
    assert "clip_min_score" not in unscored


def test_image_server_is_read_only_and_loopback(tmp_path):
    data = b"\x89PNG fake"
    sha = hashlib.sha256(data).hexdigest()
    missing = "c" * 64
    stored = {f"images/{sha}.png": data, f"images/{SHA}.png": b"other"}
    recs = [
        {
            "images": [
                {"path": f"images/{sha}.png", "sha256": sha},
                {"path": f"images/{SHA}.png", "sha256": SHA},
                {"path": f"images/{missing}.png", "sha256": missing},
            ]
        }
    ]
    assert export_images(recs, tmp_path, stored.__getitem__) == {
        "written": 1,
        "present": 0,
        "mismatched": 1,
        "missing_bytes": 1,
    }
    assert export_images(recs, tmp_path, stored.__getitem__)["present"] == 1
    (tmp_path / "secret.txt").write_text("no")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = start_image_server(tmp_path, port)
    try:
        assert base == f"http://127.0.0.1:{port}" and start_image_server(tmp_path, port) == base
        with urllib.request.urlopen(f"{base}/images/{sha}.png") as resp:
            assert resp.read() == data and resp.headers["Content-Type"] == "image/png"
        for path, method, code in [
            ("/secret.txt", "GET", 404),
            ("/images/../secret.txt", "GET", 404),
            ("/images/", "GET", 404),
            (f"/images/{sha}.png", "PUT", 405),
            (f"/images/{sha}.png", "DELETE", 405),
        ]:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(
                    urllib.request.Request(
                        base + path, method=method, data=b"" if method == "PUT" else None
                    )
                )
            assert err.value.code == code, path
    finally:
        assert stop_image_server(tmp_path)
    assert not stop_image_server(tmp_path)


def test_select_records_all_stratified_and_near_threshold():
    recs = [
        _record(
            f"PBL_w_{i}",
            "PBL",
            field="Health" if i % 2 else "Finance",
            scores={"clip": {"scored": True, "min_score": 0.2 + i / 100}},
        )
        for i in range(10)
    ] + [_record("SA_v_1", scores={"clip": {"scored": False, "min_score": None}})]
    assert [r["id"] for r in select_records(recs)][:2] == ["PBL_w_0", "PBL_w_1"]
    skipped = Counter()
    strat = select_records(
        recs, "stratified", sizes={"PBL": {"Health": 2, "*": 1}}, per_cell=0, skipped=skipped
    )
    fields = Counter(r["field"] for r in strat)
    assert fields == {"Health": 2, "Finance": 1} and skipped["not_sampled"] == 8
    again = select_records(
        list(reversed(recs)), "stratified", sizes={"PBL": {"Health": 2, "*": 1}}, per_cell=0
    )
    assert [r["id"] for r in again] == [r["id"] for r in strat]  # order-independent, seeded
    other = select_records(
        recs, "stratified", sizes={"PBL": {"Health": 2, "*": 1}}, per_cell=0, seed=7
    )
    assert len(other) == 3
    # without --per-cell, a category or field --sizes does not name sends nothing
    only = select_records(recs, "stratified", sizes={"PBL": {"Health": 1}})
    assert [(r["category"], r["field"]) for r in only] == [("PBL", "Health")]
    skipped = Counter()
    near = select_records(
        recs, "near-threshold", thresholds={"PBL": 0.25}, margin=0.015, skipped=skipped
    )
    assert [r["id"] for r in near] == ["PBL_w_4", "PBL_w_5", "PBL_w_6"]
    assert skipped == {"far_from_threshold": 7, "no_threshold": 1}
    with pytest.raises(PushError, match="--threshold"):
        select_records(recs, "near-threshold")
    with pytest.raises(PushError, match="--per-cell"):
        select_records(recs, "stratified")


@pytest.mark.parametrize(
    "verdicts, rule, want",
    [
        (["accept", "accept", "fix"], "majority", "accept"),
        (["accept", "fix"], "majority", "fix"),
        (["accept", "reject"], "majority", "reject"),
        (["fix", "reject"], "majority", "reject"),
        (["accept", "accept", "reject"], "majority", "accept"),
        (["accept", "accept", "reject"], "strictest", "reject"),
    ],
)
def test_verdict_rule(verdicts, rule, want):
    assert decide_verdict(verdicts, rule, ("accept", "fix", "reject")) == want


def test_decide_mean_score_and_corrections():
    rubric = load_rubric()
    rec = Annotated("SA_1", "SA", "Literature", "Everyday Life")
    base = {
        "verdict": "fix",
        "answer_quality": 4,
        "correct_field": "Literature",
        "correct_subfield": "Family and Friends",
    }
    rec.answers = {"u1": base, "u2": {**base, "answer_quality": 5}}
    decision, problem = decide(rec, rubric)
    assert problem is None
    assert decision == {
        "id": "SA_1",
        "verdict": "fix",
        "corrections": {"subfield": "Family and Friends"},
        "mean_score": 4.5,
        "n_responses": 2,
        "comments": [],
        "needs_edit": [],
        "corrected_by": {"subfield": ["u1", "u2"]},  # pseudonymous ids when pull passes them
    }
    tied = copy.deepcopy(rec)
    tied.answers["u2"]["correct_subfield"] = "Everyday Life"
    decision = decide(tied, rubric)[0]
    assert decision["corrections"] == {}  # a tie keeps the record's value ...
    assert decision["needs_edit"] == ["fix_without_correction", "taxonomy_tie"]  # ... held back
    bad = copy.deepcopy(rec)
    for a in bad.answers.values():
        a["correct_field"] = "Health"  # Health has no "Family and Friends"
    decision, problem = decide(bad, rubric)
    assert decision["corrections"] == {} and "not in schemas/taxonomy.yaml" in problem
    assert decision["needs_edit"] == ["fix_without_correction", "impossible_pair"]
    commented = copy.deepcopy(rec)
    commented.answers["u1"]["comment"] = "  wrong field  "
    commented.answers["u2"]["comment"] = ""
    decision = decide(commented, rubric, names={"u1": "alice"})[0]
    assert decision["comments"] == [{"annotator": "alice", "text": "wrong field"}]
    rejected = copy.deepcopy(rec)
    for a in rejected.answers.values():
        a["verdict"] = "reject"
    assert decide(rejected, rubric)[0]["corrections"] == {}


def test_render_layout_mc_once_remi_flow_and_click_to_enlarge():
    url = url_builder("http://127.0.0.1:1")
    mc = _record(
        "MSR_mathvista_3",
        "MSR",
        question=[{"text": "Angle?\nChoices:\n(A) 135°\n(B) 140°", "image": None}],
        options=[{"label": "A", "text": "135°"}, {"label": "B", "text": "140°"}],
    )
    html = render_record(mc, url)
    assert html.count("135°") == 1 and "<h4>Options</h4>" not in html
    listed = _record("MSR_x", "MSR", options=[{"label": "A", "text": "only here"}])
    assert "<h4>Options</h4>" in render_record(listed, url)
    remi = _record(
        "MSR_remi_1",
        "MSR",
        question=[
            {"text": "Compare ", "image": None},
            {"text": None, "image": f"images/{SHA}.png"},
            {"text": ", ", "image": None},
            {"text": None, "image": f"images/{'cd' * 32}.jpg"},
            {"text": " and the rest.", "image": None},
        ],
        answer=[{"text": "37", "image": None}],
    )
    html = render_record(remi, url)
    question = html.split("<h4>Question</h4>", 1)[1].split("<h4>", 1)[0]
    assert question.count('<div class="blk">') == 1  # one sentence, images after it
    assert '[image 1]</span>, <span class="ref">[image 2]</span> and the rest.' in question
    src = f"http://127.0.0.1:1/images/{SHA}.png"
    assert f'<a href="{src}" target="_blank" rel="noopener noreferrer"><img src="{src}"' in html


def test_per_item_choices_are_sized_to_the_largest_item():
    rubric = load_rubric()
    q = rubric.questions
    assert sized_labels(q["irrelevant_images"], {"image": 5}) == tuple(
        f"image_{i}" for i in range(1, 6)
    )
    assert sized_labels(q["irrelevant_images"], {"image": 1}) == ("image_1", "image_2")
    assert sized_labels(q["unverifiable_checks"], {"check": 3})[-1] == "check_3"
    flags = q[rubric.audit_question]
    assert sized_labels(flags, {"flag": 3}) == ("flag_1", "flag_2", "flag_3")
    assert sized_labels(flags, {"flag": 0}) == ("flag_1", "flag_2")  # Argilla wants two
    assert all(rubric.audit_question in names for names in rubric.categories.values())
    assert not flags.required  # unflagged items leave it empty
    assert sized_labels(q["verdict"], {"image": 9}) == q["verdict"].labels
    assert sized_labels(q["irrelevant_images"], None) == q["irrelevant_images"].labels
    assert "checks_verifiable" in rubric.categories["IF"]


def test_publish_holds_back_decisions_that_need_an_edit():
    from pipelines.publish.inputs import Annotations, apply_decisions

    records = [
        {"id": f"r{i}", "field": "Literature", "subfield": "Everyday Life"} for i in range(4)
    ]
    decisions = {
        "r0": {"id": "r0", "verdict": "accept", "corrections": {}},
        "r1": {"id": "r1", "verdict": "fix", "corrections": {}},  # old file: no list
        "r2": {"id": "r2", "verdict": "accept", "corrections": {}, "needs_edit": ["taxonomy_tie"]},
    }
    ann = Annotations(decisions, None, [], "x")
    kept, dropped = apply_decisions(records, ann, require=False)
    assert [r["id"] for r in kept] == ["r0", "r3"]
    assert {d.id: d.reason for d in dropped} == {"r1": "needs_edit", "r2": "needs_edit"}
    kept, _ = apply_decisions(records, ann, require=False, include_needs_edit=True)
    assert [r["id"] for r in kept] == ["r0", "r1", "r2", "r3"]
    kept, dropped = apply_decisions(records, ann, require=True, include_needs_edit=True)
    assert [r["id"] for r in kept] == ["r0"]
    # an unsettled edit and a harmful veto are never published, whatever the flags
    decisions["r1"]["needs_edit"] = ["conflicting_corrections"]
    decisions["r3"] = {"id": "r3", "verdict": "accept", "veto": {"by": ["ann-1"]}}
    kept, dropped = apply_decisions(records, ann, require=False, include_needs_edit=True)
    assert [r["id"] for r in kept] == ["r0", "r2"]
    assert {d.id: d.reason for d in dropped} == {"r1": "needs_edit", "r3": "harmful_veto"}
    assert ann.tally["vetoed"] == 1 and ann.tally["matched"] == 4


def _if_record(**answers) -> Annotated:
    rec = Annotated("IF_1", "IF", "Art", "Photography")
    base = {"verdict": "fix", "answer_quality": 3, "correct_field": "Art"}
    rec.answers = {u: {**base, "correct_subfield": "Photography", **a} for u, a in answers.items()}
    return rec


def test_corrections_resolve_only_when_every_fixer_agrees():
    rubric = load_rubric()
    ids = {"u1": "ann-1", "u2": "ann-2", "u3": "ann-3"}
    same = _if_record(
        u1={"corrected_weights": "6/2/2", "corrected_answer": "Checks:\r\n1. a  \n"},
        u2={"corrected_weights": " 6 / 2 / 2 ", "corrected_answer": "Checks:\n1. a"},
    )
    decision, problem = decide(same, rubric, ids=ids)
    assert problem is None and decision["needs_edit"] == []
    assert decision["corrections"] == {"answer": "Checks:\n1. a", "weights": [6, 2, 2]}
    assert decision["corrected_by"] == {"answer": ["ann-1", "ann-2"], "weights": ["ann-1", "ann-2"]}
    # different weights, or one fixer silent: conflicting, never guessed
    for other in ("5/3/2", ""):
        rec = _if_record(u1={"corrected_weights": "6/2/2"}, u2={"corrected_weights": other})
        decision, problem = decide(rec, rubric, ids=ids)
        assert decision["needs_edit"] == ["conflicting_corrections"], other
        assert "weights" not in decision["corrections"] and "different weights" in problem
    # weights that do not sum to 10: invalid, held back
    rec = _if_record(u1={"corrected_weights": "6/2/3"}, u2={"corrected_weights": "6/2/3"})
    decision, problem = decide(rec, rubric, ids=ids)
    assert decision["needs_edit"] == ["invalid_correction"] and "sum to 11" in problem
    # an accept majority ignores the fixer's correction; the fixers are who decide
    rec = _if_record(
        u1={"verdict": "accept"}, u2={"verdict": "accept"}, u3={"corrected_weights": "5/5"}
    )
    assert decide(rec, rubric, ids=ids)[0]["corrections"] == {}


def test_harmful_vetoes_whatever_the_verdict():
    rubric = load_rubric()
    rec = _if_record(u1={"verdict": "accept", "harmful": "harmful"}, u2={"verdict": "accept"})
    decision = decide(rec, rubric, ids={"u1": "ann-1"})[0]
    assert decision["verdict"] == "accept"
    assert decision["veto"] == {"question": "harmful", "labels": ["harmful"], "by": ["ann-1"]}
    rec.answers["u1"]["harmful"] = "sensitive"
    assert "veto" not in decide(rec, rubric)[0]


def test_annotator_ids_are_salted_stable_and_private(tmp_path):
    from annotation.pull import PullError, annotator_salt, pseudonym

    first = tmp_path / "r1"
    first.mkdir()
    salt = annotator_salt(first)
    assert (first / "annotator_salt").stat().st_mode & 0o077 == 0
    assert annotator_salt(first) == salt  # kept
    second = tmp_path / "r2"
    second.mkdir()
    assert annotator_salt(second, previous=first) == salt  # a second round: the same ids
    ident = pseudonym("3f1c-user-id", salt)
    assert ident == pseudonym("3f1c-user-id", salt) and ident.startswith("ann-")
    assert len(ident) == 16 and "3f1c" not in ident
    (first / "annotator_salt").write_text("not hex")
    with pytest.raises(PullError, match="not an annotator salt"):
        annotator_salt(first)
