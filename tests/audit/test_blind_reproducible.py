"""Reproducible blind scores: two builds of a small corpus (the sample's MathVista items, its
multiple-choice and open-ended questions), in-process and with 2 worker processes, write
byte-identical records, and so identical ``scores.blind``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from pipelines.cli import main
from tests.conftest import REPO


def _config(tmp_path: Path, tiny_lm: str) -> str:
    path = tmp_path / "mathvista-blind.yaml"
    path.write_text(
        "version: 1\n"
        "name: mathvista-blind\n"
        "sources:\n"
        "  mathvista:\n"
        f"    root: {REPO}/sample/mathvista\n"
        "    splits: [testmini]\n"
        "clip:\n"
        "  enabled: false\n"
        "audit:\n"
        "  blind:\n"
        "    enabled: true\n"
        f"    checkpoint: {tiny_lm}\n"
        "    max_length: 256\n"
        "    max_batch_size: 5\n"  # several RunInference batches, formed differently per run
    )
    return str(path)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "records").rglob("*"))
        if p.is_file()
    }


def _blind(folder: Path) -> dict[str, dict]:
    rows = ds.dataset(str(folder / "records")).to_table(columns=["id", "scores"]).to_pylist()
    return {r["id"]: json.loads(r["scores"])["blind"] for r in rows}


@pytest.mark.slow
def test_in_process_and_two_process_builds_write_identical_blind_scores(tmp_path, tiny_lm):
    config = _config(tmp_path, tiny_lm)
    single, multi = tmp_path / "single", tmp_path / "mp"
    assert main(["build", "--config", config, "--output", str(single)]) == 0
    args = ["build", "--config", config, "--output", str(multi)]
    args += ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    assert main(args) == 0
    scores = _blind(single)
    kinds = {s["kind"] for s in scores.values() if s["scored"]}
    assert kinds == {"multiple_choice", "open_ended"}, kinds
    assert _blind(multi) == scores
    assert _digests(multi) == _digests(single)
