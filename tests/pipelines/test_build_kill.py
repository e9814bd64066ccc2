"""``kill -9`` at several points of a build: what is left is never taken for a build, and
``--overwrite`` keeps the previous build until the new one is complete. Also ``mmloom show``
run 50 times (issue 14, item 5: it aborted now and then with exit 134)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.publish.cli import main as publish_main
from schemas.buildio import IncompleteBuildError, read_records, require_complete
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.pipelines.tinybuild import write_tiny_build

pytestmark = pytest.mark.slow


def _ids(build: Path) -> list[str]:
    return sorted(r["id"] for r in read_records(str(build)))


@pytest.fixture(scope="module")
def good_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill") / "good"
    assert main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"]) == 0
    return out


def _staging(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.building-*"))


def _reached(out: Path, point: str) -> bool:
    for staging in _staging(out):
        if point == "images" and any((staging / "images").glob("*.jpg")):
            return True
        if point == "records" and any((staging / "records").glob("records-*.parquet")):
            return True
        if point == "stats" and (staging / "stats.json").exists():
            return True
    return False


def _build_killed_at(out: Path, point: str, *extra: str) -> bool:
    """Run a build as a subprocess and SIGKILL it as soon as ``point`` is reached; returns
    whether the kill came before the build finished."""
    cmd = [sys.executable, "-m", "pipelines.cli", "build", "--config", str(SAMPLE_CONFIG)]
    cmd += ["--output", str(out), "--no-clip", "--progress-every", "0", *extra]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if _reached(out, point):
                break
            time.sleep(0.005)
    finally:
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return killed


def _refused_everywhere(folder: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(IncompleteBuildError):
        require_complete(str(folder))
    assert main(["show", str(folder), "--jsonl"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    rel = tmp_path / "release"
    assert publish_main(["--build", str(folder), "--output", str(rel), "--version", "1.0.0"]) == 2
    assert "not a complete build" in capsys.readouterr().err
    assert not rel.exists()
    annotate_cli = pytest.importorskip("annotation.annotate_cli")
    os.environ.pop("ARGILLA_API_URL", None)  # no server: push must refuse before asking
    assert annotate_cli.main(["push", "--build", str(folder), "--dataset", "x"]) == 2
    assert "not a complete build" in capsys.readouterr().err


@pytest.mark.parametrize("point", ["images", "records", "stats"])
def test_killed_build_leaves_nothing_that_passes_for_a_build(tmp_path, capsys, point):
    out = tmp_path / "out"
    assert _build_killed_at(out, point), f"the build finished before reaching {point}"
    assert not out.exists()  # a local build appears only complete
    (staging,) = _staging(out)
    assert not (staging / "_BUILD.json").exists()
    _refused_everywhere(staging, tmp_path, capsys)
    assert main(["show", str(out), "--jsonl"]) == 2
    assert "holds no build" in capsys.readouterr().err
    # the same folder, kept in place as an object store would keep it: still refused
    in_place = tmp_path / "in-place"
    shutil.copytree(staging, in_place)
    _refused_everywhere(in_place, tmp_path, capsys)
    code = main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(in_place), "--no-clip"])
    assert code == 2
    assert "holds an incomplete build" in capsys.readouterr().err


def test_overwrite_killed_midway_keeps_the_previous_build(good_build, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(good_build, out)
    before = _ids(out)
    for point in ("images", "records", "stats"):
        assert _build_killed_at(out, point, "--overwrite"), point
        assert require_complete(str(out))
        assert _ids(out) == before
        assert main(["show", str(out), "--summary"]) == 0
        capsys.readouterr()
    # the next run clears what the killed ones left, and completes
    code = main(
        ["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip", "--overwrite"]
    )
    assert code == 0
    assert _ids(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# exactly what ``mmloom show --jsonl`` does with each shard (schemas.buildio.iter_parquet_rows,
# local branch, then from_row and strict JSON), without importing Beam: under a loaded machine
# Beam's import alone takes seconds, which would make 50 full CLI runs take many minutes
SHOW_READ = """
import sys
import pyarrow.parquet as pq
from schemas.jsonsafe import dumps_strict
from schemas.parquet import from_row
for path in sys.argv[1:]:
    pfile = pq.ParquetFile(path)
    try:
        for group in range(pfile.num_row_groups):
            table = pfile.read_row_group(group, columns=None, use_threads=False)
            for row in table.to_pylist():
                sys.stdout.write(dumps_strict(from_row(row), ensure_ascii=False) + "\\n")
    finally:
        pfile.close()
"""


def test_show_runs_50_times_without_aborting(tmp_path):
    """Issue 14, item 5: ``mmloom show`` exited 134 in 1-3 of 10 runs (pyarrow's threaded
    read of a Python file object). It reads by path, one row group at a time, without threads.
    The real command runs 3 times; its read path runs 50 times, each its own process."""
    out = write_tiny_build(tmp_path / "b", n=400, shards=2, row_group_size=50)
    shards = [str(p) for p in sorted((out / "records").glob("*.parquet"))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [[sys.executable, "-c", SHOW_READ, *shards]] * 50
    runs += [[sys.executable, "-m", "pipelines.cli", "show", str(out), "--jsonl"]] * 3
    for n, cmd in enumerate(runs):
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (n, done.returncode, done.stderr[-2000:])
        assert len(done.stdout.splitlines()) == 400, n
