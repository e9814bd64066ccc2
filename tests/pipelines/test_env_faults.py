"""Issue 19: a fault of the machine (a full disk, an I/O error, a read-only or unwritable
output) fails the build with one message and leaves nothing that looks complete; a fault of
the input (a missing, unreadable or undecodable image) stays a dead letter.

The builds here are real DirectRunner runs of configs/sample.yaml (``--no-clip``). The disk
fails in three ways: the image store's one low-level write (``schemas.store.write_object``,
mmloom's own function) replaced in-process; the same replacement made in every worker process
by ``tests/pipelines/fault_injection/sitecustomize.py``; and a real, small tmpfs that fills up
(skipped where this machine may not mount one).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

import schemas.store
from pipelines import images as images_mod
from pipelines.cli import main
from pipelines.config import ImagesConfig
from pipelines.images import fetch_bytes
from pipelines.transforms.images import LoadImagesFn
from schemas.errors import (
    READING,
    WRITING,
    EnvironmentFault,
    RecordError,
    as_record_error,
    classify_os_error,
    find_environment_fault,
)
from schemas.store import ImageStore, ref_for
from tests.conftest import REPO, SAMPLE_CONFIG
from tools.sample_images import make_image

INJECT = Path(__file__).parent / "fault_injection"


def _oserror(name: str, filename: str = "/abs/machine/path/x") -> OSError:
    code = getattr(errno, name)
    return OSError(code, os.strerror(code), filename)


# ----------------------------------------------------------------------------- the line


@pytest.mark.parametrize(
    "name, operation, machine",
    [
        ("ENOSPC", WRITING, True),
        ("EDQUOT", WRITING, True),
        ("EIO", WRITING, True),
        ("EROFS", WRITING, True),
        ("EACCES", WRITING, True),
        ("EPERM", WRITING, True),
        ("ENOENT", WRITING, True),  # the build's own folder vanished: not the input's doing
        ("EIO", READING, True),  # the disk under the sources failed: not the image's fault
        ("ENOMEM", READING, True),
        ("EMFILE", READING, True),
        ("ENOENT", READING, False),  # a missing image: a dead letter
        ("EISDIR", READING, False),
        ("ENOTDIR", READING, False),
        ("ELOOP", READING, False),
        ("EACCES", READING, False),  # the data as given: the same on every run
        ("EPERM", READING, False),
    ],
)
def test_classify_os_error_draws_the_line(name, operation, machine):
    assert classify_os_error(_oserror(name), operation) is machine


def test_classify_os_error_ignores_what_is_not_an_os_error():
    assert not classify_os_error(ValueError("bad value"), WRITING)
    assert not classify_os_error(RecordError("image_missing", "x"), READING)
    assert classify_os_error(EnvironmentFault("the disk is full"), READING)


def test_a_fault_names_a_relative_path_and_what_to_do():
    fault = EnvironmentFault.from_os_error(_oserror("ENOSPC"), WRITING, "images/ab.jpg")
    assert str(fault) == (
        "the disk is full (ENOSPC) writing images/ab.jpg in the build; free space and run the "
        "build again"
    )
    assert (fault.errno, fault.operation, fault.path) == (errno.ENOSPC, WRITING, "images/ab.jpg")
    again = pickle.loads(pickle.dumps(fault))
    assert (str(again), again.errno, again.path) == (str(fault), errno.ENOSPC, "images/ab.jpg")
    for name in ("EIO", "EROFS", "EACCES", "ENOENT"):
        message = str(EnvironmentFault.from_os_error(_oserror(name), WRITING, "stats.json"))
        assert f"({name}) writing stats.json" in message and "/abs" not in message


def test_an_unexpected_os_error_in_a_dead_letter_names_no_machine_path():
    detail = as_record_error(_oserror("EBUSY", "/home/someone/data/images/1.png")).detail
    assert "/home" not in detail and "1.png" in detail


# ----------------------------------------------------------------------------- what Beam raises


def _faulty(x: int) -> int:
    if x == 2:
        raise EnvironmentFault.from_os_error(_oserror("EIO"), WRITING, "records/r.parquet")
    return x


def test_the_fault_is_found_in_what_an_in_process_run_raises():
    # Beam re-raises the DoFn's exception with the step appended to its message
    with pytest.raises(Exception) as raised, beam.Pipeline() as p:
        p | beam.Create([1, 2, 3]) | "Step" >> beam.Map(_faulty)
    assert "while running" in str(raised.value)
    fault = find_environment_fault(raised.value)
    assert str(fault) == (
        "the disk reported an I/O error (EIO) writing records/r.parquet in the build; check "
        "the disk (dmesg) and run the build again"
    )
    assert fault.errno == errno.EIO


def test_the_fault_is_found_in_a_worker_traceback_passed_on_as_text():
    try:
        _faulty(2)
    except EnvironmentFault as exc:
        text = "".join(traceback.format_exception(exc)) + " [while running 'Step']"
    fault = find_environment_fault(RuntimeError(text))
    assert str(fault).startswith("the disk reported an I/O error (EIO) writing records/r.parquet")
    assert "while running" not in str(fault) and fault.errno == errno.EIO


def test_an_os_error_inside_beams_own_errors_is_found(tmp_path):
    build = tmp_path / "build"
    (build / "records").mkdir(parents=True)
    with pytest.raises(BeamIOError) as raised:  # Beam wraps each file's error in its own
        FileSystems.rename([str(build / "records" / "gone")], [str(build / "records" / "x")])
    assert classify_os_error(raised.value, WRITING)  # a rename of the build's own file
    assert not classify_os_error(raised.value, READING)  # ENOENT reading: an input fault
    bare = _oserror("ENOSPC", str(build / "records" / "r.parquet"))
    wrapped = BeamIOError("Rename failed", {("a", "b"): bare})
    fault = find_environment_fault(wrapped, (str(build),))
    assert str(fault) == (
        "the disk is full (ENOSPC) at records/r.parquet; free space and run the build again"
    )
    assert find_environment_fault(RuntimeError("a bug, not the machine")) is None


# ----------------------------------------------------------------------------- images


def _draft_with_file(tmp_path: Path, draft_factory) -> tuple[dict, Path]:
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    path = root / "images" / "1.jpg"
    path.write_bytes(make_image("env-fault"))
    draft = draft_factory()
    draft["images"] = [{"ref": draft["images"][0]["ref"], "uri": str(path), "root": str(root)}]
    return draft, path


def test_an_io_error_reading_a_source_image_stops_the_run(tmp_path, monkeypatch, draft_factory):
    draft, _ = _draft_with_file(tmp_path, draft_factory)

    def broken_read(uri, **kwargs):
        raise _oserror("EIO", uri)

    monkeypatch.setattr(images_mod, "read_bytes", broken_read)
    with pytest.raises(EnvironmentFault) as raised:
        fetch_bytes(draft["images"][0], 1 << 20)
    assert str(raised.value).startswith(
        "the disk reported an I/O error (EIO) reading images/1.jpg in a source folder;"
    )
    assert str(tmp_path) not in str(raised.value)


@pytest.mark.parametrize("name, reason", [("EACCES", "image_unreadable"), ("ENOENT", None)])
def test_input_faults_reading_an_image_stay_dead_letters(
    tmp_path, monkeypatch, draft_factory, name, reason
):
    draft, path = _draft_with_file(tmp_path, draft_factory)
    if name == "ENOENT":
        path.unlink()  # really missing
        reason = "image_missing"
    else:  # tests run as root, whom permission bits do not stop: the read is made to refuse

        def refused(uri, **kwargs):
            raise _oserror(name, uri)

        monkeypatch.setattr(images_mod, "read_bytes", refused)
    with pytest.raises(RecordError) as raised:
        fetch_bytes(draft["images"][0], 1 << 20)
    assert raised.value.reason == reason
    assert str(tmp_path) not in raised.value.detail


def test_load_images_lets_a_store_fault_through_instead_of_a_dead_letter(
    tmp_path, monkeypatch, draft_factory
):
    def full(uri, data):
        raise _oserror("ENOSPC", uri)

    monkeypatch.setattr(schemas.store, "write_object", full)
    fn = LoadImagesFn("", ImagesConfig.from_block(), ImageStore(str(tmp_path / "build")))
    fn.setup()
    with pytest.raises(EnvironmentFault, match=r"\(ENOSPC\) writing images/[0-9a-f]{64}\.jpg"):
        list(fn.process(draft_factory()))
    assert not list((tmp_path / "build" / "images").iterdir())  # no partial left


def test_the_store_writes_through_its_one_write_function(tmp_path, monkeypatch):
    """The function the fault tests replace is the one every image goes through."""
    calls = []
    real = schemas.store.write_object

    def counting(uri, payload):
        calls.append(uri)
        real(uri, payload)

    monkeypatch.setattr(schemas.store, "write_object", counting)
    ref = ref_for("a" * 64, "jpg")
    assert ImageStore(str(tmp_path)).put(ref, make_image("env-fault-store"))
    assert len(calls) == 1 and calls[0].endswith(".partial") and (tmp_path / ref).is_file()


# ----------------------------------------------------------------------------- builds


def _assert_no_build(out: Path) -> None:
    """Nothing at --output, no staging folder beside it, no manifest anywhere."""
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if ".building-" in p.name] == []
    assert list(out.parent.rglob("_BUILD.json")) == []


def _one_message(err: str, out: Path) -> str:
    lines = [line for line in err.splitlines() if line.startswith("mmloom build: error:")]
    assert len(lines) == 1, err
    assert str(out.parent) not in lines[0]  # no machine path, no staging folder
    return lines[0]


ADVICE = {
    "ENOSPC": "free space and run the build again",
    "EIO": "check the disk (dmesg) and run the build again",
    "EROFS": "choose an --output on a writable file system",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ADVICE))
def test_a_disk_that_fails_for_a_while_fails_the_build(tmp_path, capsys, monkeypatch, name):
    """The first writes fail, later ones succeed (a disk full for a while): before issue 19
    this gave a "complete" build without the records whose images failed."""
    failures = [3]
    real = schemas.store.write_object

    def for_a_while(uri: str, data: bytes) -> None:
        if failures[0] > 0:
            failures[0] -= 1
            raise _oserror(name, uri)
        real(uri, data)

    monkeypatch.setattr(schemas.store, "write_object", for_a_while)
    out = tmp_path / "build"
    code = main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    line = _one_message(err, out)
    assert f"({name}) writing images/" in line and " in the build; " in line
    assert line.endswith(ADVICE[name])
    _assert_no_build(out)


@pytest.mark.slow
def test_a_permission_error_on_the_output_fails_the_build(tmp_path, capsys, monkeypatch):
    from pipelines.transforms import io

    def refused(path: str, rows: list) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(io, "write_parquet_shard", refused)
    out = tmp_path / "build"
    code = main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = _one_message(err, out)
    assert line == (
        "mmloom build: error: permission denied (EACCES) writing "
        "records/records-00000-of-00001.parquet in the build; make the folder writable by this "
        "user or choose another"
    )
    _assert_no_build(out)


@pytest.mark.slow
def test_an_io_error_reading_a_source_image_fails_the_build(tmp_path, capsys, monkeypatch):
    def broken(uri, **kwargs):
        raise _oserror("EIO", uri)

    monkeypatch.setattr(images_mod, "read_bytes", broken)
    out = tmp_path / "build"
    code = main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = _one_message(err, out)
    assert "(EIO) reading " in line and "in a source folder" in line
    assert str(REPO) not in line
    _assert_no_build(out)


def _build_in_child(out: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "build", "--config", str(SAMPLE_CONFIG),
         "--output", str(out), "--no-clip", *extra],
        cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_a_fault_in_a_worker_process_fails_the_build_with_one_message(tmp_path):
    """``multi_processing``: the fault is raised in a Beam worker process and comes back to
    the command as text; it still ends as one message and no build. (Beam's worker prints
    its own traceback before that: sdk_worker.py does it, see README "Guarantees".)"""
    out = tmp_path / "build"
    env = {
        "PYTHONPATH": os.pathsep.join([str(INJECT), str(REPO)]),
        "MMLOOM_TEST_FAIL_STORE_WRITES": "ENOSPC",
    }
    run = _build_in_child(
        out, "--direct_num_workers", "2", "--direct_running_mode", "multi_processing", env=env
    )
    assert run.returncode == 2, run.stderr[-3000:]
    line = _one_message(run.stderr, out)
    assert run.stderr.rstrip().splitlines()[-1] == line
    assert "(ENOSPC) writing images/" in line and "[while running" not in line
    _assert_no_build(out)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (the sample's images take about 1.3 MB); skipped where mounting is not
    permitted (not root, or no CAP_SYS_ADMIN in a container)."""
    mount = shutil.which("mount")
    disk = tmp_path / "disk"
    disk.mkdir()
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and the mount command")
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_really_full_disk_fails_the_build(small_disk):
    """A real ENOSPC: the disk holds a 1.4 MB file, so the image store fills up mid-build."""
    (small_disk / "filler").write_bytes(b"\0" * 1_400_000)
    out = small_disk / "build"
    run = _build_in_child(out)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    line = _one_message(run.stderr, out)
    assert "the disk is full (ENOSPC) writing " in line
    _assert_no_build(out)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # staging removed


@pytest.mark.slow
def test_an_output_on_a_read_only_disk_fails_before_the_pipeline(small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    out = small_disk / "build"
    run = _build_in_child(out)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    # refused by the output checks before the pipeline starts (schemas/output.py): the message
    # names the user's --output and its folder, never a hidden staging folder
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("mmloom build: error:")]
    assert len(lines) == 1, run.stderr
    assert "Read-only file system" in lines[0] and "choose an --output" in lines[0]
    assert ".building-" not in lines[0]
    assert not out.exists()
