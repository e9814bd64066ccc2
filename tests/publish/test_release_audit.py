"""The release's card and report describe the validity audit and its limits (issue 23)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # the session's sample build and its release


def test_the_release_card_and_report_describe_the_audit_and_its_limits(release):
    card = (release / "README.md").read_text("utf-8")
    assert "### Validity audit" in card
    assert "**Flags are evidence for review, not verdicts.**" in card
    assert "Accuracy of blind heuristics" in card
    assert "built-in method" not in card
    n = len(list((release / "data").glob("*.parquet")))
    assert n and "items carry at least one flag" in card
    page = (release / "report" / "index.html").read_text("utf-8")
    assert "Validity audit (model-free)" in page
    assert "Flags are evidence for review, not verdicts" in page
    assert "built-in method" not in page
    assert (
        "audit_heuristics.png" in page and (release / "report" / "audit_heuristics.png").is_file()
    )


def test_the_card_describes_the_blind_audit_and_counts_every_stages_flags(release):
    """The sample runs the blind-answerability stage with the tiny random-weight LM: the card
    names the model, says its flags mean nothing, and counts the released flags per stage and
    code as they are in the rows."""
    import collections

    import datasets

    card = (release / "README.md").read_text("utf-8")
    assert "blind-answerability audit (`ScoreBlindAnswerability`" in card
    assert "(`mmloom-tiny-lm`)" in card
    assert "tiny random-weight test model: its scores and flags mean nothing" in card
    rows = datasets.load_dataset(
        "parquet", data_files=str(release / "data" / "*.parquet"), split="train"
    )
    counted = collections.Counter(
        f"{f['stage']}/{f['code']}" for a in rows["audit"] if a for f in a["flags"]
    )
    assert counted, "the tiny LM flags some sample items (its scores are random but fixed)"
    line = "Flags on the released items, per stage and code: " + ", ".join(
        f"`{k}` {n}" for k, n in sorted(counted.items())
    )
    assert line + "." in card
    page = (release / "report" / "index.html").read_text("utf-8")
    assert "<h3>Model-based audits</h3>" in page and "mmloom-tiny-lm" in page
    assert "tiny random-weight test model: its scores and flags mean nothing" in page
