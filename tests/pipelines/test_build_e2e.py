"""End to end: `mmloom build` on the bundled sample, through the real CLI and DirectRunner."""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest

from pipelines.cli import main
from schemas.buildio import read_dead_letters, read_records
from schemas.validation import validate_record
from tests.conftest import REPO, SAMPLE_CONFIG

pytestmark = pytest.mark.slow  # sample_build: tests/conftest.py


def test_stats_reconcile_for_every_source(sample_build):
    stats = json.loads((sample_build / "stats.json").read_text())
    assert set(stats["sources"]) == {"vist", "wikihow", "mathvista", "remi", "coco"}
    assert stats["reconciled"] is True
    for name, s in stats["sources"].items():
        assert s["read"] == s["written"] + sum(s["dropped"].values()), name
        assert s["written"] > 0, f"{name} wrote no records"


def test_records_validate_and_cover_all_categories(sample_build, capsys):
    assert main(["show", str(sample_build), "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    stats = json.loads((sample_build / "stats.json").read_text())
    assert len(records) == stats["totals"]["written"]
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert validate_record(r) == [], r["id"]
        assert any(s["image"] for s in r["question"]), r["id"]
    assert {r["category"] for r in records} == {"SA", "PBL", "MSR", "IF"}
    per_source = Counter(r["provenance"]["source"] for r in records)
    for name, s in stats["sources"].items():
        assert per_source[name] == s["written"]


def test_dead_letters_match_stats(sample_build):
    stats = json.loads((sample_build / "stats.json").read_text())
    dead = list(read_dead_letters(str(sample_build)))
    for d in dead:
        assert set(d) == {"stage", "reason", "source", "source_id", "detail", "unit"}
    counted = Counter((d["source"], d["reason"]) for d in dead if d["unit"] == "record")
    expected = Counter(
        {
            (src, reason): n
            for src, s in stats["sources"].items()
            for reason, n in s["dropped"].items()
        }
    )
    assert counted == expected


def test_show_one_record_by_id(sample_build, capsys):
    first = next(iter(sorted(r["id"] for r in read_records(str(sample_build)))))
    assert main(["show", str(sample_build), "--id", first]) == 0
    shown = json.loads(capsys.readouterr().out)  # one object, not a list
    assert shown["id"] == first
    assert "bytes" not in shown["images"][0]


def test_the_readme_show_examples_work_on_the_sample(sample_build, capsys):
    """The Quick start's ``show --id`` and ``show --dead-letters`` lines name what the sample
    build holds (issue 22: its id was one the sample drops)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (record_id,) = re.findall(r"mmloom show out/sample --id (\S+)", readme)
    assert main(["show", str(sample_build), "--id", record_id]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == record_id
    (source,) = re.findall(r"mmloom show out/sample --dead-letters --source (\S+)", readme)
    assert main(["show", str(sample_build), "--dead-letters", "--source", source]) == 0
    letters = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert letters and {d["source"] for d in letters} == {source}


def test_existing_build_is_not_overwritten_silently(sample_build, capsys):
    code = main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(sample_build)])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_multi_process_run_gives_the_same_records(sample_build, tmp_path):
    out = tmp_path / "mp"
    args = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(out)]
    args += ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    assert main(args) == 0
    ids_mp = sorted(r["id"] for r in read_records(str(out)))
    ids_single = sorted(r["id"] for r in read_records(str(sample_build)))
    assert ids_mp == ids_single
    assert (
        json.loads((out / "stats.json").read_text())["sources"]
        == json.loads((sample_build / "stats.json").read_text())["sources"]
    )
    assert sorted(os.listdir(out / "images")) == sorted(os.listdir(sample_build / "images"))
