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
