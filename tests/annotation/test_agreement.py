"""Agreement figures: Krippendorff's alpha (nominal/ordinal), percent agreement, bootstrap CIs."""

from __future__ import annotations

import pytest

from annotation.agreement import agreement, alpha_from_counts, count_matrix
from annotation.pull import Annotated, agreement_report
from annotation.rubric import load_rubric

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 3-coder x 15-unit
# example with missing values (nominal 0.691, interval 0.811); one list per unit.
KRIPPENDORFF_UNITS = [
    [1], [], [2, 2], [1, 1], [3, 3], [3, 3, 4], [4, 4, 4], [1, 3], [2, 2], [1, 1], [1, 1],
    [3, 3], [3, 3], [], [3, 4],
]  # fmt: skip


def test_published_example():
    assert agreement(KRIPPENDORFF_UNITS, "nominal", n_boot=0)["alpha"] == pytest.approx(
        0.6914, abs=1e-4
    )
    interval = agreement(KRIPPENDORFF_UNITS, "interval", domain=[1, 2, 3, 4], n_boot=0)
    assert interval["alpha"] == pytest.approx(0.8108, abs=1e-4)
    assert interval["pairable_units"] == 12 and interval["units"] == 15


def test_nominal_alpha_by_hand():
    # Two coders, five units: (a,a) (a,r) (r,r) (f,f) (a,f).
    # n = 10 pairable values: accept 4, reject 3, fix 3.
    # Observed disagreement: 2 disagreeing units, each 2 ordered pairs / (m-1 = 1) -> 4 / n = 0.4.
    # Expected disagreement: (n^2 - sum n_c^2) / (n (n-1)) = (100 - 34) / 90 = 0.7333.
    # alpha = 1 - 0.4 / 0.7333 = 1 - 6/11 = 5/11.
    units = [["a", "a"], ["a", "r"], ["r", "r"], ["f", "f"], ["a", "f"]]
    result = agreement(units, "nominal", n_boot=200)
    assert result["alpha"] == pytest.approx(5 / 11, abs=1e-4)
    assert result["percent_agreement"] == pytest.approx(3 / 5)
    lo, hi = result["alpha_ci95"]
    assert lo <= result["alpha"] <= hi
    assert agreement(units, "nominal", n_boot=200) == result  # seeded: reproducible


def test_ordinal_uses_the_whole_scale():
    # Same answers on the 0-6 scale: a 2-vs-3 disagreement costs less than 0-vs-6.
    close = [[2, 3], [5, 5], [0, 0], [6, 6]]
    far = [[0, 6], [5, 5], [2, 2], [3, 3]]
    a_close = agreement(close, "ordinal", domain=range(7), n_boot=0)["alpha"]
    a_far = agreement(far, "ordinal", domain=range(7), n_boot=0)["alpha"]
    assert a_close > a_far
    nominal_close = agreement(close, "nominal", n_boot=0)["alpha"]
    assert a_close > nominal_close  # nominal treats 2 vs 3 as a full disagreement


def test_undefined_cases():
    assert agreement([[1, 1], [1, 1]], "nominal", n_boot=10)["alpha"] is None  # no variation
    single = agreement([[1], [2]], "nominal", n_boot=10)
    assert single["alpha"] is None and single["percent_agreement"] is None
    counts, domain = count_matrix([[0, 6]], domain=range(7))
    assert counts.shape == (1, 7) and alpha_from_counts(counts, "ordinal", domain) is not None


def test_report_per_question_and_category():
    rubric = load_rubric()
    recs = []
    for i, (v1, v2) in enumerate([("accept", "accept"), ("accept", "reject"), ("fix", "fix")]):
        rec = Annotated(f"SA_{i}", "SA", "Literature", "Everyday Life")
        rec.answers = {
            "u1": {"verdict": v1, "answer_quality": 4, "irrelevant_images": ["image_1"]},
            "u2": {
                "verdict": v2,
                "answer_quality": 5 if i else 4,
                "irrelevant_images": ["image_1"],
            },
        }
        recs.append(rec)
    report = agreement_report(recs, rubric, n_boot=50)
    assert set(report) == {"verdict", "answer_quality", "irrelevant_images"}
    assert (
        report["verdict"]["level"] == "nominal" and report["answer_quality"]["level"] == "ordinal"
    )
    assert report["verdict"]["by_category"]["SA"]["alpha"] == report["verdict"]["alpha"]
    assert report["irrelevant_images"]["percent_agreement"] == 1.0
    assert "comment" not in report


def test_one_sided_optional_labels_count_and_single_annotators_give_no_alpha():
    rubric = load_rubric()
    recs = []
    for i, ticks in enumerate([["image_1"], [], ["image_2"]]):
        rec = Annotated(f"SA_{i}", "SA", "Literature", "Everyday Life")
        rec.answers = {
            "u1": {"verdict": "accept", "irrelevant_images": ticks},
            "u2": {"verdict": "accept"},
        }
        recs.append(rec)
    report = agreement_report(recs, rubric, n_boot=0)
    images = report["irrelevant_images"]
    assert images["pairable_units"] == 3  # u2's empty answer is "none", not missing
    assert images["percent_agreement"] == pytest.approx(1 / 3, abs=1e-4)
    alone = Annotated("MSR_1", "MSR", "Math", "Geometry")
    alone.answers = {"u1": {"verdict": "accept"}}
    report = agreement_report([*recs, alone], rubric, n_boot=0)
    assert report["verdict"]["by_category"]["MSR"]["alpha"] is None
    assert report["verdict"]["by_category"]["MSR"]["pairable_units"] == 0
    # one shared item is not enough for an alpha either (it would be exactly 0)
    assert agreement([["a", "b"]], "nominal", n_boot=0)["alpha"] is None
