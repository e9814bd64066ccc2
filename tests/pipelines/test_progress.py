"""Progress lines: the first one when a stage's first element arrives, one per ``every``
seconds, one at each bundle's end; totals, a percentage and an ETA where the total is known
(no timing thresholds: the clock is passed in, or ``every`` is tiny or huge)."""

from __future__ import annotations

import re

import pytest

from pipelines.cli import main
from pipelines.transforms.progress import ReportProgressFn
from tests.conftest import REPO, SAMPLE_CONFIG

LINE = re.compile(r"^\[mmloom \d+:\d\d:\d\d\] (\w+): (.*) \(worker \d+\)$")


def run_fn(fn: ReportProgressFn, n: int, total: int | None = None) -> None:
    fn.setup()
    for i in range(n):
        assert list(fn.process(i, total=total)) == [i]
    fn.finish_bundle()


def test_a_stage_shorter_than_every_prints_its_start_and_its_count(capsys):
    run_fn(ReportProgressFn("LoadImages", "records", 0.0, every=1e9), 3)
    lines = capsys.readouterr().err.splitlines()
    assert [LINE.match(ln).groups() for ln in lines] == [
        ("LoadImages", "1 records so far"),
        ("LoadImages", "3 records so far"),
    ]


def test_nothing_is_printed_twice_for_one_count(capsys):
    run_fn(ReportProgressFn("ReadVIST", "items", 0.0, every=0.0), 2)
    err = capsys.readouterr().err  # a line per element; none more at the bundle's end
    assert [LINE.match(ln).group(2) for ln in err.splitlines()] == [
        "1 items so far",
        "2 items so far",
    ]


def test_a_known_total_gives_a_percentage_and_an_eta():
    fn = ReportProgressFn("LoadImages", "drafts", 100.0, every=1e9)
    fn.setup()
    for i in range(3):
        list(fn.process(i, total=7))
    fn._first = 200.0  # the first of 3 arrived 10 s before: 2 more took 10 s, 4 are left
    assert LINE.match(fn.line(210.0)).groups() == (
        "LoadImages",
        "3 of 7 drafts (43%, ETA 0:00:20)",
    )
    assert fn.line(210.0).startswith("[mmloom 0:01:50] ")


def test_no_eta_before_a_rate_is_known(capsys):
    run_fn(ReportProgressFn("LoadImages", "drafts", 0.0, every=1e9), 1, total=4)
    assert LINE.match(capsys.readouterr().err.splitlines()[0]).group(2) == "1 of 4 drafts (25%)"


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_a_short_build_prints_a_line_per_stage_with_the_load_total(tmp_path, capsys):
    """The sample's VIST source alone, --no-clip: a build of seconds, every stage reported."""
    text = SAMPLE_CONFIG.read_text().replace("../sample/", f"{REPO}/sample/")
    head, _, rest = text.partition("\n  wikihow:\n")
    config = tmp_path / "vist.yaml"
    config.write_text(head + "\n" + rest[rest.index("\nclip:\n") :])
    out = tmp_path / "build"
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
    assert main([*argv, "--progress-every", "0.0001"]) == 0
    lines = [LINE.match(ln) for ln in capsys.readouterr().err.splitlines()]
    by_stage: dict[str, list[str]] = {}
    for m in filter(None, lines):
        by_stage.setdefault(m.group(1), []).append(m.group(2))
    assert set(by_stage) == {"ReadVIST", "LoadImages", "WriteRecords"}
    assert all(re.fullmatch(r"[\d,]+ items so far", t) for t in by_stage["ReadVIST"])
    loads = [
        re.fullmatch(r"([\d,]+) of ([\d,]+) drafts \(\d+%.*\)", t) for t in by_stage["LoadImages"]
    ]
    assert all(loads), by_stage["LoadImages"]
    assert loads[-1].group(1) == loads[-1].group(2)  # the last line: every draft
    assert by_stage["WriteRecords"]
