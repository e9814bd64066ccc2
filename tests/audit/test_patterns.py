"""The model-free audit (pipelines/audit/patterns.py) catches every planted bias, and a
bias-free control corpus raises no flag."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from pipelines.audit import patterns as P
from pipelines.config import AuditConfig
from tests.audit import planted


def codes(flags: dict[str, list[dict]]) -> dict[str, set[str]]:
    """{code: ids flagged with it}."""
    out: dict[str, set[str]] = {}
    for rid, fs in flags.items():
        for f in fs:
            out.setdefault(f["code"], set()).add(rid)
    return out


# --- statistics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stat", "df", "expected"),
    [
        (3.841458820694124, 1, 0.05),
        (2.0, 2, math.exp(-1.0)),  # df 2: exp(-x/2)
        (9.487729036781154, 4, 0.05),
        (0.0, 3, 1.0),
        (200.0, 10, None),  # far tail: tiny but positive
    ],
)
def test_chi2_sf_matches_known_values(stat, df, expected):
    p = P.chi2_sf(stat, df)
    if expected is None:
        assert 0 < p < 1e-30
    else:
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_chi2_sf_agrees_with_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 24, 60):
        for x in (0.1, 1.0, df * 0.5, df, df * 2.0, df * 5.0 + 10):
            assert P.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-8, abs=1e-300)


def test_binomial_sum_tail_equals_brute_force():
    trials = {2: 3, 4: 4}  # 3 items of 2 options, 4 of 4
    probs = [0.5] * 3 + [0.25] * 4
    for hits in range(0, 9):
        brute = sum(
            math.prod(p if o else 1 - p for p, o in zip(probs, outcome, strict=True))
            for outcome in itertools.product([0, 1], repeat=7)
            if sum(outcome) >= hits
        )
        assert P.binomial_sum_sf(trials, hits) == pytest.approx(brute, abs=1e-12)


def test_binomial_sum_tail_large_uses_fft_and_stays_a_probability():
    p = P.binomial_sum_sf({4: 5000, 5: 3000}, 1250 + 600)  # the mean: about one half
    assert 0.45 < p < 0.55
    assert P.binomial_sum_sf({4: 5000, 5: 3000}, 3000) < 1e-100 + 1e-15


def test_holm_adjusts_step_down_and_keeps_order():
    assert P.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_leave_one_out_never_counts_an_answer_held_once():
    assert P.loo_hits({"3": 5, "4": 1, "7": 1}) == {"3": True, "4": False, "7": False}
    # a tie among the others is broken by the smaller text
    assert P.loo_hits({"a": 2, "b": 1}) == {"a": True, "b": False}  # the others: a 1, b 1
    assert P.loo_hits({"b": 2, "a": 1}) == {"b": False, "a": False}
    assert P.loo_accuracy({"x": 3, "y": 3}) == 0.0  # each guessed as the other one


def test_position_test_leaves_out_strata_below_five_expected():
    t = P.position_test({4: [10, 10, 10, 10], 5: [1, 1, 0, 1, 0]})
    assert t["strata"] == [4] and t["too_small"] == [5] and t["df"] == 3
    assert t["chi2"] == 0 and t["p"] == pytest.approx(1.0)
    assert P.position_test({5: [1, 1, 1, 1, 1]})["p"] is None


# --- planted biases ------------------------------------------------------------------------


def test_always_option_a_is_caught_and_every_item_flagged():
    records = planted.always_position(200, pos=0)
    report, flags = P.audit(records)
    (cell,) = report["multiple_choice"]["cells"]
    assert cell["position_test"]["bias"] and cell["position_test"]["p_holm"] < 1e-50
    assert cell["over_represented"] == {"4": [0]}
    assert cell["heuristics"]["most_frequent_position"] == 1.0
    found = codes(flags)
    assert found.get("answer_position_bias") == {r["id"] for r in records}
    assert "longest_option" not in found and "shortest_option" not in found
    f = flags[records[0]["id"]][0]
    assert f["figure"] == 1.0 and f["threshold"] == 0.25 and "option A in 100%" in f["reason"]
    assert report["flagged"]["by_code"]["answer_position_bias"] == 200


def test_always_option_c_is_caught_too():
    records = planted.always_position(120, pos=2, seed=9)
    _, flags = P.audit(records)
    assert codes(flags) == {"answer_position_bias": {r["id"] for r in records}}


@pytest.mark.parametrize(
    ("longest", "code"), [(True, "longest_option"), (False, "shortest_option")]
)
def test_always_the_longest_or_shortest_option_is_caught(longest, code):
    records = planted.always_extreme(200, longest=longest)
    report, flags = P.audit(records)
    (cell,) = report["multiple_choice"]["cells"]
    name = "longest" if longest else "shortest"
    assert cell[name]["bias"] and cell[name]["rate"] == 1.0 and cell[name]["chance"] == 0.25
    assert not cell["position_test"]["bias"]
    assert cell["heuristics"]["always_" + name] == 1.0
    assert codes(flags) == {code: {r["id"] for r in records}}


def test_a_longest_bias_in_part_of_a_corpus_flags_only_the_items_that_follow_it():
    rng = random.Random(5)
    records = planted.always_extreme(150, longest=True)
    mixed = [r for r in records]
    mixed += planted.control_mc(150, seed=11, start=1000)
    rng.shuffle(mixed)
    _, flags = P.audit(mixed)
    flagged = codes(flags).get("longest_option", set())
    # every planted item; among the control items only those whose answer is the longest
    assert {r["id"] for r in records} <= flagged
    for r in mixed:
        lengths = [len(o["text"]) for o in r["options"]]
        follows = lengths[P.LETTERS.index(r["answer_value"])] == max(lengths)
        assert (r["id"] in flagged) == follows


def test_answer_in_question_is_caught_only_when_no_distractor_is_there():
    records = planted.control_mc(100, seed=4)
    leaked = records[0]
    answer = leaked["options"][P.LETTERS.index(leaked["answer_value"])]["text"]
    leaked["source_metadata"]["question"] = f"Is the shape a {answer}?"
    both = records[1]
    texts = [o["text"] for o in both["options"]]
    both["source_metadata"]["question"] = f"Is it {texts[0]} or {texts[1]}?"
    report, flags = P.audit(records)
    assert codes(flags) == {"answer_in_question": {leaked["id"]}}
    (f,) = flags[leaked["id"]]
    assert answer in f["reason"]
    assert report["multiple_choice"]["cells"][0]["answer_in_question"] == 1


def test_open_ended_answer_in_question():
    records = planted.control_oe(60)
    records.append(
        planted.oe_record(
            999, "Which animal, the walrus or its keeper, is on the left?", ["the walrus"]
        )
    )
    records.append(planted.oe_record(998, "Is the light on? Answer yes or no.", ["yes"]))
    _, flags = P.audit(records)
    assert codes(flags) == {"answer_in_question": {"SA_mathvista_999"}}


def test_one_open_ended_answer_repeated_verbatim_is_caught():
    prompt = "Continue the story: write the next parts of this photo story."
    rng = random.Random(6)
    records = []
    for i in range(60):
        segments = [" ".join(rng.sample(planted.WORDS, 5)) + " ." for _ in range(3)]
        if i % 4 == 0:
            segments[2] = "we had a great time ."
        records.append(
            planted.oe_record(i, f"story {i} starts here .", segments, source="vist", prompt=prompt)
        )
    report, flags = P.audit(records)
    repeated = {r["id"] for i, r in enumerate(records) if i % 4 == 0}
    assert codes(flags) == {"repeated_answer": repeated}
    assert report["repeated_answers"]["top"] == [{"text": "we had a great time", "items": 15}]
    f = flags[records[0]["id"]][0]
    assert f["figure"] == 15 and f["threshold"] == 10
    # the template of a source with a fixed prompt is that prompt
    (cell,) = report["open_ended"]["cells"]
    assert cell["template"].startswith("prompt: continue the story")


def test_a_frequent_answer_in_one_template_is_caught_and_only_there():
    records = planted.control_oe(120)
    rng = random.Random(8)
    frequent = []
    for i in range(40):
        answer = "3" if i < 30 else str(rng.randrange(10, 99))
        r = planted.oe_record(500 + i, f"How many blue balls are in box {i}?", [answer])
        records.append(r)
        if answer == "3":
            frequent.append(r["id"])
    report, flags = P.audit(records)
    assert codes(flags) == {"frequent_answer": set(frequent)}
    cell = next(c for c in report["open_ended"]["cells"] if c["template"] == "how many blue balls")
    assert cell["frequent_answer_bias"] and cell["baseline_accuracy"] == 0.75
    assert cell["most_frequent_answer"] == "3" and cell["most_frequent_count"] == 30


def test_a_small_cell_is_reported_as_too_few_items_and_never_flagged():
    records = planted.always_position(16, pos=0)
    report, flags = P.audit(records)
    (cell,) = report["multiple_choice"]["cells"]
    assert cell["status"] == "too few items" and "position_test" not in cell
    assert not any(flags.values())
    # tested with a lower minimum, but 4 expected per position is below Cochran's 5
    report, flags = P.audit(records, AuditConfig.from_block({"min_cell_items": 2}))
    test = report["multiple_choice"]["cells"][0]["position_test"]
    assert test["p"] is None and test["too_small"] == [4] and not any(flags.values())
    # 20 items: 5 expected per position, tested and caught
    records = planted.always_position(20, pos=0)
    _, flags = P.audit(records)
    assert codes(flags) == {"answer_position_bias": {r["id"] for r in records}}


# --- the control ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_bias_free_control_corpus_raises_no_flag(seed):
    records = planted.control_mc(400, seed=seed) + planted.control_oe(200, seed=seed, start=5000)
    report, flags = P.audit(records)
    assert not any(flags.values()), {k: v for k, v in flags.items() if v}
    assert report["flagged"]["items"] == 0
    (cell,) = report["multiple_choice"]["cells"]
    assert cell["status"] == "tested" and report["tests"] == 3
    h = cell["heuristics"]
    assert abs(h["always_longest"] - h["chance"]) < 0.1


def test_the_report_is_the_same_whatever_the_record_order():
    records = (
        planted.control_mc(100)
        + planted.always_position(100, start=500)
        + planted.control_oe(60, start=900)
    )
    shuffled = list(records)
    random.Random(1).shuffle(shuffled)
    assert P.audit(records) == P.audit(shuffled)


def test_numbers_match_whole_in_the_answer_in_question_check():
    assert P.match_text("DE = 3.0, so") == "de 3 so"
    records = planted.control_mc(60, seed=7)
    a, b = records[0], records[1]
    a["options"] = [{"label": L, "text": t} for L, t in zip("ABCD", ["1", "3", "6", "9"])]
    a["answer_value"] = "B"
    a["source_metadata"]["question"] = "DE = 3.0, then AB is ()"  # the answer, 3, is there
    b["options"] = [{"label": L, "text": t} for L, t in zip("ABCD", ["2", "5", "7", "9"])]
    b["answer_value"] = "B"
    b["source_metadata"]["question"] = "The ratio is 0.5; find x."  # 5 is not there
    _, flags = P.audit(records)
    assert codes(flags) == {"answer_in_question": {a["id"]}}
