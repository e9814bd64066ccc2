"""Issue 19: mmloom deletes or replaces only folders it made and can recognise; one run per
output at a time; output paths checked before the pipeline starts. Each defect is reproduced
through the CLI as a user runs it (``pipelines.cli.main`` or ``python -m pipelines.cli``)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import build
from pipelines.cli import main
from pipelines.publish import inputs
from schemas import output
from schemas.buildio import read_stats, require_complete, write_manifest
from schemas.errors import PipelineConfigError
from schemas.records import not_scored
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.pipelines.tinybuild import write_tiny_build


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _publishable(folder: Path) -> Path:
    """A tiny build whose records carry ``scores.clip`` (as a ``--no-clip`` build writes), so
    that ``publish`` can release it."""
    out = write_tiny_build(folder, manifest=False)
    for path in sorted((out / "records").glob("*.parquet")):
        table = pq.read_table(path)
        rows = table.to_pylist()
        for row in rows:
            row["scores"] = json.dumps({"clip": not_scored("no_clip")})
        pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    write_manifest(str(out))
    return out


def _fails(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ".building-" not in err and ".publish-" not in err
    return err


def _sample_config(tmp_path: Path, name: str = "sample") -> Path:
    """configs/sample.yaml with absolute paths (and another build name)."""
    text = SAMPLE_CONFIG.read_text().replace("../", str(REPO) + "/")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("name: sample", f"name: {name}"))
    return path


# ------------------------------------------------------------------------------ ownership


@pytest.mark.parametrize("force", [True, False])
def test_publish_force_never_deletes_a_folder_mmloom_did_not_write(tmp_path, capsys, force):
    """Defect 1: ``publish --output victim --force`` deleted the user's thesis."""
    victim = tmp_path / "victim"
    (victim / "thesis").mkdir(parents=True)
    (victim / "thesis" / "chapter1.txt").write_text("x")
    b = _publishable(tmp_path / "b")
    argv = ["publish", "--build", str(b), "--output", str(victim), "--version", "9.9.9"]
    err = _fails(capsys, *argv, *(["--force"] if force else []))
    assert "not a release written by mmloom" in err
    assert "--force" not in err  # never suggested for a folder mmloom cannot recognise
    assert (victim / "thesis" / "chapter1.txt").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["b", "victim"]


def test_publish_force_replaces_only_a_release_it_wrote(tmp_path, capsys):
    b = _publishable(tmp_path / "b")
    rel = tmp_path / "rel"
    base = ["publish", "--build", str(b), "--output", str(rel)]
    assert main([*base, "--version", "1.0.0"]) == 0
    err = _fails(capsys, *base, "--version", "1.0.1")
    assert "already exists (release 1.0.0)" in err and "--force" in err
    assert main([*base, "--version", "1.0.1", "--force"]) == 0
    assert json.loads((rel / "manifest.json").read_text())["release_version"] == "1.0.1"
    # a manifest.json that is not a mmloom release manifest does not make a folder a release
    (rel / "manifest.json").write_text('{"release_version": "1.0.1"}')
    err = _fails(capsys, *base, "--version", "1.0.2", "--force")
    assert "not a release written by mmloom" in err
    assert sorted(os.listdir(tmp_path)) == ["b", "rel"]


@pytest.mark.parametrize("where", ["the build", "inside the build", "the build's parent"])
def test_publish_output_overlapping_the_build_is_refused(tmp_path, capsys, where):
    """Defect 1: ``--output`` equal to the build turned the build into a release."""
    b = _publishable(tmp_path / "data" / "b")
    out = {"the build": b, "inside the build": b / "rel", "the build's parent": b.parent}[where]
    before = _tree(tmp_path)
    argv = ["publish", "--build", str(b), "--output", str(out), "--version", "1.0.0", "--force"]
    err = _fails(capsys, *argv)
    assert "which this run reads" in err
    assert _tree(tmp_path) == before
    assert require_complete(str(b))


@pytest.mark.parametrize("overwrite", [True, False])
def test_build_overwrite_never_deletes_a_folder_of_photos(tmp_path, capsys, overwrite):
    """Defect 2: a folder whose only entry is ``images/`` was called an incomplete build, and
    ``--overwrite`` deleted it."""
    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    (photos / "images" / "holiday.jpg").write_bytes(b"\xff\xd8 my photo")
    argv = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(photos), "--no-clip"]
    err = _fails(capsys, *argv, *(["--overwrite"] if overwrite else []))
    assert "does not take it for its own" in err
    assert "incomplete build" not in err and "--overwrite" not in err
    assert (photos / "images" / "holiday.jpg").read_bytes() == b"\xff\xd8 my photo"
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_an_incomplete_build_is_replaced_only_with_mmlooms_mark(tmp_path):
    out = write_tiny_build(tmp_path / "b", manifest=False)
    with pytest.raises(PipelineConfigError, match="does not take it for its own"):
        build.prepare_output(str(out), overwrite=True)
    output.write_marker(str(out), output.BUILD)  # as a build started by mmloom leaves it
    with pytest.raises(PipelineConfigError, match=r"incomplete build.*--overwrite"):
        build.prepare_output(str(out), overwrite=False)
    staging = build.prepare_output(str(out), overwrite=True)
    assert os.path.basename(staging).startswith(".b.building-")
    assert output.read_marker(staging)["pid"] == os.getpid()
    # a damaged build whose _BUILD.json is mmloom's is mmloom's, mark or not
    damaged = write_tiny_build(tmp_path / "d")
    (damaged / "records" / "records-00001-of-00002.parquet").unlink()
    with pytest.raises(PipelineConfigError, match=r"incomplete build.*--overwrite"):
        build.prepare_output(str(damaged), overwrite=False)


@pytest.mark.parametrize("which", ["a source folder", "the parent of the sources", "a glob's"])
def test_build_output_that_is_a_source_or_holds_one_is_refused(tmp_path, capsys, which):
    config = _sample_config(tmp_path)
    out = {
        "a source folder": REPO / "sample" / "wikihow" / "wiki_images",
        "the parent of the sources": REPO / "sample",
        "a glob's": REPO / "sample" / "vist" / "sis",
    }[which]
    before = sorted(out.rglob("*"))
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip", "--overwrite"]
    err = _fails(capsys, *argv)
    assert "which this run reads" in err
    assert sorted(out.rglob("*")) == before
    assert not list(out.parent.glob(f".{out.name}.*"))


# ------------------------------------------------------------------------------ paths


def test_non_utf8_output_is_refused_before_the_pipeline(tmp_path, capsys):
    """Defect 9: a non-UTF-8 byte in --output crashed at the end of the pipeline."""
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff")
    err = _fails(capsys, "build", "--config", str(SAMPLE_CONFIG), "--output", bad, "--no-clip")
    assert "not valid UTF-8" in err
    b = _publishable(tmp_path / "b")
    err = _fails(capsys, "publish", "--build", str(b), "--output", bad, "--version", "1.0.0")
    assert "not valid UTF-8" in err
    assert sorted(os.listdir(tmp_path)) == ["b"]


@pytest.fixture
def unwritable_outputs(tmp_path):
    """Outputs in folders that cannot be written even by root: under /proc, and in a read-only
    tmpfs where this sandbox lets root mount one."""
    outs = ["/proc/xx"]
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]
    mounted = subprocess.run(cmd, capture_output=True).returncode == 0
    if mounted:
        outs.append(str(ro / "out"))
    yield outs
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)


def test_output_in_a_folder_that_cannot_be_written_is_refused_before_the_pipeline(
    tmp_path, capsys, unwritable_outputs
):
    """Defect 9: a read-only output ended in a traceback naming the hidden staging folder.
    Tests run as root, where permissions do not stop a write: ``/proc`` and (where this
    sandbox lets root mount) a read-only tmpfs do."""
    b = _publishable(tmp_path / "b")
    for out in unwritable_outputs:
        argv = ["build", "--config", str(SAMPLE_CONFIG), "--output", out, "--no-clip"]
        err = _fails(capsys, *argv)
        assert f"cannot write --output {out}" in err
        err = _fails(capsys, "publish", "--build", str(b), "--output", out, "--version", "1.0.0")
        assert f"cannot write --output {out}" in err


@pytest.mark.slow
def test_a_symlinked_output_is_followed_and_stays_a_link(tmp_path, capsys):
    """Defect 9: a symlinked --output with --overwrite was replaced by a real folder, and a
    ``.NAME.building-*`` symlink was left that later builds never removed."""
    real = tmp_path / "data" / "real"
    write_tiny_build(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    # what the old swap left behind: a staging-named symlink of a process that is gone
    leftover = tmp_path / ".link.building-999999999-old"
    leftover.symlink_to(real)
    config = _sample_config(tmp_path, name="relinked")
    argv = ["build", "--config", str(config), "--output", str(link), "--no-clip", "--overwrite"]
    assert main(argv) == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert read_stats(str(real))["build"] == "relinked" and require_complete(str(real))
    assert sorted(os.listdir(tmp_path)) == ["data", "link", "relinked.yaml"]
    assert sorted(os.listdir(real.parent)) == ["real"]
    capsys.readouterr()


# ------------------------------------------------------------------------------ one run at a time


def test_a_second_build_or_publish_fails_at_once_naming_the_running_one(tmp_path, capsys):
    """Defect 4: two runs into one output both went ahead. The test process holds the
    output's lock as a running build does (the same helper), so the race is deterministic."""
    out = tmp_path / "out"
    b = _publishable(tmp_path / "b")
    with output.writer_lock(str(out), output.BUILD):
        argv = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"]
        err = _fails(capsys, *argv)
        assert f"is being written right now by pid {os.getpid()}" in err
        err = _fails(
            capsys, "publish", "--build", str(b), "--output", str(out), "--version", "1.0.0"
        )
        assert f"is being written right now by pid {os.getpid()}" in err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["b"]  # the lock file goes with its last holder


def test_publish_reads_the_build_under_its_readers_lock(tmp_path, monkeypatch):
    """Defect 4: a publish reading a build while ``build --overwrite`` swapped it could
    release one build's data under the other's manifest. While publish reads, a swap of the
    build cannot take the readers' lock."""
    b = _publishable(tmp_path / "b")
    real_read_build = inputs.read_build
    tried = []

    def read_build(build_dir):
        fd = os.open(output.lock_path(str(b), readers=True), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        tried.append(build_dir)
        return real_read_build(build_dir)

    monkeypatch.setattr(inputs, "read_build", read_build)
    argv = ["publish", "--build", str(b), "--output", str(tmp_path / "rel"), "--version", "1.0.0"]
    assert main(argv) == 0
    assert tried == [str(b)]
    assert sorted(os.listdir(tmp_path)) == ["b", "rel"]


def _start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for(proc: subprocess.Popen, text: str) -> str:
    """Read ``proc``'s output until a line holds ``text`` (it exits first: a failure)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    proc.wait()
    raise AssertionError(f"exited {proc.returncode} before saying {text!r}:\n{''.join(seen)}")


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_builds_into_one_new_output_one_wins(tmp_path):
    """Defect 4: two builds into the same new --output both exited 0 and reported their own
    counts, but only one build's records were there. Now the second fails at once, naming the
    first, and the output holds exactly the first one's build. The test holds the output's
    readers' lock (as a reader of it would), so the first build, once finished, waits before
    putting its build in place, and the second surely starts while the first runs."""
    out = tmp_path / "out"
    first, second = _sample_config(tmp_path, "first"), _sample_config(tmp_path, "second")
    flags = ["--no-clip", "--progress-every", "0"]
    with output.reader_lock(str(out)):
        winner = _start("build", "--config", str(first), "--output", str(out), *flags)
        _wait_for(winner, "to finish reading")
        assert not out.exists()
        loser = _run("build", "--config", str(second), "--output", str(out), *flags)
    rest, _ = winner.communicate(timeout=600)
    assert winner.returncode == 0, rest
    assert loser.returncode == 2, loser.stderr
    assert f"is being written right now by pid {winner.pid}" in loser.stderr
    assert "Traceback" not in loser.stderr
    assert read_stats(str(out))["build"] == "first" and require_complete(str(out))
    assert sorted(os.listdir(tmp_path)) == ["first.yaml", "out", "second.yaml"]


@pytest.mark.slow
def test_two_publishes_to_one_output_one_wins(tmp_path):
    """Defect 4: a second publish to one output silently replaced the first. The test holds
    the build's lock as a swap of it would, so the first publish waits (holding its output)
    before reading, and the second surely starts while the first runs."""
    b = _publishable(tmp_path / "b")
    rel = tmp_path / "rel"
    with output.swap_lock(str(b)):
        winner = _start("publish", "--build", str(b), "--output", str(rel), "--version", "1.0.0")
        _wait_for(winner, "before reading it")
        loser = _run(
            "publish", "--build", str(b), "--output", str(rel), "--version", "2.0.0", "--force"
        )
    rest, _ = winner.communicate(timeout=600)
    assert winner.returncode == 0, rest
    assert loser.returncode == 2, loser.stderr
    assert f"is being written right now by pid {winner.pid}" in loser.stderr
    assert "Traceback" not in loser.stderr
    assert json.loads((rel / "manifest.json").read_text())["release_version"] == "1.0.0"
    assert sorted(os.listdir(tmp_path)) == ["b", "rel"]


def test_liveness_survives_pid_reuse():
    me = os.getpid()
    assert output.alive(me, output.process_start(me))
    assert not output.alive(me, output.process_start(me) + 1)  # same pid, another process
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert not output.alive(int(done.stdout))


def test_stale_staging_of_a_dead_run_is_removed_and_a_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    dead = Path(output.make_staging(str(out), output.BUILD))
    info = output.read_marker(str(dead))
    info["start"] = info["start"] + 1  # as if written by an earlier process with this pid
    (dead / output.MARKER).write_text(json.dumps(info))
    live = Path(output.make_staging(str(out), output.RELEASE))
    unknown = tmp_path / ".out.building-1-mine"
    unknown.mkdir()
    (unknown / "notes.txt").write_text("not mmloom's")
    output.clean_stale(str(out))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, unknown.name])


def test_annotate_push_reads_the_build_under_its_readers_lock(tmp_path, monkeypatch, capsys):
    """``annotate push`` holds the build's readers' lock from its first check of the build to
    its end, so no swap replaces the build it is sending."""
    annotate_cli = pytest.importorskip("annotation.annotate_cli")
    b = write_tiny_build(tmp_path / "b")
    held = []

    def credentials():
        fd = os.open(output.lock_path(str(b), readers=True), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        held.append(True)
        raise annotate_cli.ClientError("no server in this test")

    monkeypatch.setattr(annotate_cli, "credentials", credentials)
    assert annotate_cli.main(["push", "--build", str(b), "--dataset", "x"]) == 2
    assert held == [True] and "no server in this test" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_folder_left_aside_is_deleted_only_when_mmloom_recognises_it(tmp_path):
    out = tmp_path / "out"
    write_tiny_build(out)
    ours = write_tiny_build(tmp_path / ".out.replaced-old")  # a build a crashed swap left
    theirs = tmp_path / ".out.replaced-mine"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("not mmloom's")
    output.restore(str(out))
    assert not ours.exists()
    assert (theirs / "notes.txt").read_text() == "not mmloom's"
