"""The content-addressed image store: written once, read by reference, never partial."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from schemas.buildio import read_records, record_files
from schemas.errors import EnvironmentFault
from schemas.store import ImageStore, is_ref, ref_for
from tests.conftest import REPO, SAMPLE_CONFIG
from tools.sample_images import make_image


def _ref(data: bytes, ext: str = "jpg") -> str:
    return ref_for(hashlib.sha256(data).hexdigest(), ext)


def _store_files(build: Path) -> dict[str, str]:
    """name -> sha256 of every file in the build's images/ folder (partials included)."""
    folder = build / "images"
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


# ----------------------------------------------------------------------------- pure store


def test_put_writes_once_and_reads_back(tmp_path):
    store = ImageStore(str(tmp_path / "build"))
    data = make_image("store-a")
    ref = _ref(data)
    assert store.put(ref, data) is True
    assert store.put(ref, data) is False  # already there: not written again
    assert store.get(ref) == data
    assert store.size(ref) == len(data)
    assert store.refs() == [ref]
    assert store.partials() == []


def test_failed_write_leaves_no_partial_and_no_final_file(tmp_path, monkeypatch):
    store = ImageStore(str(tmp_path / "build"))
    data = make_image("store-b")
    ref = _ref(data)
    from apache_beam.io.filesystems import FileSystems

    def broken_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(FileSystems, "rename", broken_rename)
    # a store write that fails is the machine's fault: it stops the build (never a dead letter)
    with pytest.raises(EnvironmentFault, match=f"writing {ref} in the build"):
        store.put(ref, data)
    assert not store.exists(ref)
    assert store.partials() == []


def test_sweep_removes_partials_of_interrupted_writes(tmp_path):
    store = ImageStore(str(tmp_path / "build"))
    data = make_image("store-c")
    ref = _ref(data)
    store.put(ref, data)
    leftover = Path(store.root) / f".{ref.split('/')[1]}.abc123.partial"
    leftover.write_bytes(data[:100])
    assert store.partials() == [str(leftover)]
    assert store.refs() == [ref]  # a partial is never listed as an image
    assert store.sweep_partials() == 1
    assert store.partials() == []
    assert store.get(ref) == data


def test_refs_are_content_addresses_only(tmp_path):
    store = ImageStore(str(tmp_path))
    assert is_ref("images/" + "a" * 64 + ".png")
    for bad in ("images/../x.png", "/etc/passwd", "images/" + "a" * 63 + ".png", "x.jpg"):
        assert not is_ref(bad)
        with pytest.raises(ValueError):
            store.uri(bad)
    with pytest.raises(FileNotFoundError, match="--overwrite"):
        store.get("images/" + "b" * 64 + ".jpg")


def test_copy_to_links_or_copies(tmp_path):
    store = ImageStore(str(tmp_path / "build"))
    data = make_image("store-d")
    ref = _ref(data)
    store.put(ref, data)
    dst = tmp_path / "release" / "mmie" / ref
    store.copy_to(ref, str(dst))
    assert dst.read_bytes() == data


# ----------------------------------------------------------------------------- builds


@pytest.mark.slow
def test_records_reference_the_store_and_carry_no_bytes(sample_build):
    for path in record_files(str(sample_build)):
        names = pq.read_schema(path).field("images").type.value_type.names
        assert "bytes" not in names
    store = ImageStore(str(sample_build))
    used = set()
    for record in read_records(str(sample_build)):
        for im in record["images"]:
            assert "bytes" not in im and is_ref(im["path"])
            used.add(im["path"])
    for ref in used:
        assert hashlib.sha256(store.get(ref)).hexdigest() == ref.split("/")[1].split(".")[0]
    assert used <= set(store.refs())
    assert store.partials() == []


@pytest.mark.slow
def test_two_builds_write_the_same_store(sample_build, tmp_path):
    """The store depends on the inputs alone (CLIP scoring happens after it is written)."""
    out = tmp_path / "again"
    assert main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"]) == 0
    assert _store_files(out) == _store_files(sample_build)


@pytest.mark.slow
def test_build_killed_during_image_writes_leaves_nothing_and_the_rerun_is_clean(
    sample_build, tmp_path
):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pipelines.cli", "build", "--config", str(SAMPLE_CONFIG)]
    cmd += ["--output", str(out), "--no-clip"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    images = None
    try:
        while time.time() < deadline and proc.poll() is None:
            # a local build is written into a staging folder beside --output
            found = [p / "images" for p in tmp_path.glob(".killed.building-*")]
            if found and found[0].is_dir() and any(found[0].iterdir()):
                images = found[0]
                break  # the first images are being written: kill it now
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert images is not None, "the build never reached image writing"
    assert not out.exists()  # nothing appears at --output until the build is complete
    # whatever the kill left, plus a write torn off mid-file, as a crash can leave it
    (images / ".0123.jpg.deadbeef0000.partial").write_bytes(b"\xff\xd8\xff" + b"\0" * 10)
    assert main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), "--no-clip"]) == 0
    files = _store_files(out)
    assert not [n for n in files if n.endswith(".partial") or n.startswith(".")]
    assert files == _store_files(sample_build)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]  # the staging is gone
