"""Issue 14, item 3: bounded, safe reads. A FIFO, a device, a symlink out of the source folder
or a file over its size cap is a dead letter, never a hang, a crash or a published image.

Each build runs in a subprocess under a timeout, so a regression (a read that blocks on a FIFO
or grows without end on /dev/zero) fails the test instead of hanging it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.buildio import read_dead_letters
from tests.conftest import REPO

BUILD_TIMEOUT_S = 300
MAIN = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"


def _build(tmp_path: Path, config_text: str) -> tuple[Path, dict, list[dict]]:
    """Run ``mmloom build --no-clip`` in a subprocess; its output, stats and dead letters."""
    config = tmp_path / "build.yaml"
    config.write_text(config_text)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
    done = subprocess.run(
        [sys.executable, "-c", MAIN, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,  # a hang is a failure
    )
    assert done.returncode == 0, done.stderr[-4000:]
    stats = json.loads((out / "stats.json").read_text())
    for name, entry in stats["sources"].items():  # counts reconcile: read = written + dropped
        assert entry["read"] == entry["written"] + sum(entry["dropped"].values()), name
    assert stats["reconciled"] is True
    return out, stats, list(read_dead_letters(str(out)))


@pytest.fixture
def hostile_mathvista(tmp_path: Path) -> tuple[Path, Path]:
    """The sample MathVista (GitHub layout) with hostile files in place of five images."""
    root = tmp_path / "mathvista"
    shutil.copytree(REPO / "sample" / "mathvista", root)
    images = root / "images"
    problems = json.loads((root / "testmini.json").read_text())
    pids = sorted(problems, key=int)[:5]
    fifo, zero, outside, inside, big = (images / Path(problems[p]["image"]).name for p in pids)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = elsewhere / "secret.jpg"
    secret.write_bytes(outside.read_bytes() + b"outside the root")  # bytes of its own
    real_inside = root / "moved.jpg"  # a link that stays inside the root still works
    shutil.move(inside, real_inside)
    for path in (fifo, zero, outside):
        path.unlink()
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    outside.symlink_to(secret)
    inside.symlink_to(Path("..") / "moved.jpg")
    big.write_bytes(big.read_bytes() + b"\0" * 30_000)  # still a JPEG, over the 20 kB cap
    return root, secret


def _reasons(dead: list[dict], stage: str) -> dict[str, str]:
    return {d["source_id"]: d["reason"] for d in dead if d["stage"] == stage}


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_hostile_images_are_dead_letters_and_the_build_finishes(tmp_path, hostile_mathvista):
    root, secret = hostile_mathvista
    out, stats, dead = _build(
        tmp_path,
        f"version: 1\nsources:\n  mathvista:\n    root: {root}\n"
        "limits:\n  max_image_bytes: 20000\n",
    )
    problems = json.loads((root / "testmini.json").read_text())
    pids = sorted(problems, key=int)[:5]
    loaded = _reasons(dead, "load_images")
    assert loaded[pids[0]] == "image_not_regular_file"  # the FIFO
    assert loaded[pids[1]] == "path_escapes_root"  # the link to /dev/zero (refused unread)
    assert loaded[pids[2]] == "path_escapes_root"  # the link out of the root
    assert pids[3] not in loaded  # the link inside the root
    assert loaded[pids[4]] == "image_file_too_large"
    details = " ".join(d["detail"] for d in dead)
    assert str(tmp_path) not in details  # files are named relative to their root
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    assert not list((out / "images").glob(f"{digest}.*"))  # never read, never published
    assert stats["sources"]["mathvista"]["written"] == len(problems) - 4


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_fifo_and_escaping_source_files_are_one_dead_letter_each(tmp_path):
    """A FIFO as MathVista's testmini.json; a ReMI parquet file that links out of its glob's
    folder. Each is one read dead letter; the rest of the build goes on."""
    root = tmp_path / "mathvista"
    shutil.copytree(REPO / "sample" / "mathvista", root)
    (root / "testmini.json").unlink()
    os.mkfifo(root / "testmini.json")
    remi = tmp_path / "remi"
    remi.mkdir()
    shutil.copy(REPO / "sample" / "remi" / "test.parquet", remi / "test.parquet")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "sample" / "remi" / "train.parquet", elsewhere / "train.parquet")
    (remi / "train.parquet").symlink_to(elsewhere / "train.parquet")
    _, stats, dead = _build(
        tmp_path,
        f"version: 1\nsources:\n  mathvista:\n    root: {root}\n"
        f"  remi:\n    parquet: {remi}/*.parquet\n",
    )
    read = [d for d in dead if d["stage"] == "read"]
    assert {(d["source"], d["reason"]) for d in read} == {
        ("mathvista", "not_a_regular_file"),
        ("remi", "path_escapes_root"),
    }
    assert len(read) == 2
    assert stats["sources"]["mathvista"]["written"] == 0
    assert stats["sources"]["remi"]["written"] > 0  # test.parquet is read
