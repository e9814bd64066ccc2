"""The label audit in a real build: MathVista's sample items through ``mmloom build`` with the
tiny local VLM (CLIP off), then ``mmloom publish``, read back by ``datasets``."""

from __future__ import annotations

import glob

import datasets
import pytest

from pipelines.cli import main
from schemas.buildio import read_dead_letters, read_records
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a build and a release, with a model


def test_a_build_scores_flags_and_publishes_label_suspicion(tmp_path, tiny_vlm):
    config = tmp_path / "label.yaml"
    config.write_text(
        "version: 1\nname: label\nsources:\n  mathvista:\n"
        f"    root: {REPO}/sample/mathvista\n    splits: [testmini]\n"
        "clip:\n  enabled: false\n"
        f"audit:\n  label:\n    enabled: true\n    model_dir: {tiny_vlm}\n    device: cpu\n"
        "    threshold: 0.3\n    max_batch_size: 4\n    max_new_tokens: 4\n"
    )
    build = tmp_path / "build"
    assert main(["build", "--config", str(config), "--output", str(build)]) == 0
    records = list(read_records(str(build)))
    dead = list(read_dead_letters(str(build)))
    assert not [d for d in dead if d["stage"] in ("score_label", "flag_label")]
    labels = {r["id"]: r["scores"]["label"] for r in records}
    mc = [r for r in records if r["options"]]
    assert mc and all(labels[r["id"]]["method"] == "options" for r in mc)
    for r in records:
        label = labels[r["id"]]
        codes = [f["code"] for f in ((r["audit"] or {}).get("flags") or [])]
        suspect = label["scored"] and label["agree"] is False and label["suspicion"] >= 0.3
        assert codes == (["label_suspect"] if suspect else []), r["id"]
    assert any(codes for r in records for codes in [(r["audit"] or {}).get("flags")])

    release = tmp_path / "release"
    assert main(["publish", "--build", str(build), "--output", str(release),
                 "--version", "1.0.0"]) == 0  # fmt: skip
    files = sorted(glob.glob(str(release / "data" / "*.parquet")))
    rows = datasets.load_dataset("parquet", data_files=files, split="train")
    assert {r["id"]: r["scores"]["label"] for r in rows} == labels
