"""HTTP fetches against a real loopback server: resume after a kill, retries, checksums,
zip-slip, disk space, hand-downloaded files."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import yaml

from pipelines.cli import main
from tests.fetch.conftest import (
    COCO_ANN,
    COCO_VAL,
    REPO,
    VIST_SIS,
    checksums_dir,
    fetch_cmd,
    fetch_coco,
    fetch_env,
    gets,
    put_manual,
    zip_bytes,
)


def test_killed_download_resumes_with_range(tmp_path, serve, published):
    files, hub = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    cut = 4096
    files.put(COCO_VAL, published.http[COCO_VAL], fault=("hang", cut))
    env = fetch_env(files, hub, tmp_path)
    proc = subprocess.Popen(
        fetch_cmd("coco", "--to", str(to), "--checksums-dir", str(sums)),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    part = to / "downloads/coco/val2017.zip.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == cut):
        assert proc.poll() is None, "fetch ended before the server stalled"
        assert time.monotonic() < deadline, "the partial file never reached the cut"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # killed midway, as by an OOM killer or a closed laptop
    proc.wait(10)
    assert not (to / "downloads/coco/val2017.zip").exists()

    files.put(COCO_VAL, published.http[COCO_VAL])  # the host is fine again
    assert fetch_coco(files, to, sums) == 0
    requests = gets(files, COCO_VAL)
    assert [r.headers.get("Range") for r in requests] == [None, f"bytes={cut}-"]
    assert (to / "downloads/coco/val2017.zip").read_bytes() == published.http[COCO_VAL]
    assert len(list((to / "coco/val2017").glob("*.jpg"))) == 79
    assert not part.exists()


def test_dropped_connection_resumes_in_the_same_run(tmp_path, serve, published):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("cut_once", 1000))
    assert fetch_coco(files, tmp_path / "data", sums) == 0
    assert [r.headers.get("Range") for r in gets(files, COCO_ANN)] == [None, "bytes=1000-"]


def test_server_that_always_drops_fails_clearly_after_bounded_retries(
    tmp_path, serve, published, capsys
):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("drop", 0))
    started = time.monotonic()
    assert fetch_coco(files, tmp_path / "data", sums, "--retries", "3") == 2
    assert time.monotonic() - started < 10  # backoff 0.01 s doubling: fast
    assert len(gets(files, COCO_ANN)) == 4  # the first try and 3 retries
    err = capsys.readouterr().err
    assert "could not download coco/annotations_trainval2017.zip" in err
    assert "4 attempts in a row failed" in err
    assert "run the same command again" in err
    assert not gets(files, COCO_VAL)  # stopped at the first file that failed


def test_http_error_is_not_retried(tmp_path, serve, published, capsys):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    files.state.files.pop(files.path_of(COCO_ANN))
    assert fetch_coco(files, tmp_path / "data", sums) == 2
    assert len(gets(files, COCO_ANN)) == 1
    assert "answered HTTP 404" in capsys.readouterr().err


def test_corrupted_file_is_caught_and_kept_aside(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    good = published.http[COCO_ANN]
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    files.put(COCO_ANN, bytes(bad))
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch for annotations_trainval2017.zip" in err
    assert published.sha(good) in err and published.sha(bytes(bad)) in err
    kept = list((to / "downloads/coco/.bad").iterdir())
    assert [p.read_bytes() for p in kept] == [bytes(bad)]
    assert not (to / "downloads/coco/annotations_trainval2017.zip").exists()
    assert not (to / "coco/annotations").exists()  # nothing laid out from a bad file
    assert not (to / "mmloom.yaml").exists()

    files.put(COCO_ANN, good)  # run again: a fresh download, verified
    assert fetch_coco(files, to, sums) == 0
    assert (to / "coco/annotations/captions_val2017.json").is_file()


def test_unknown_checksums_are_recorded_once_then_verified(
    tmp_path, serve, published, capsys, caplog
):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    assert fetch_coco(files, to, sums) == 0
    recorded = (to / "coco/checksums.tsv").read_text()
    for url in (COCO_ANN, COCO_VAL):
        data = published.http[url]
        assert f"{url}\t{len(data)}\t{published.sha(data)}\t" in recorded
    assert "recorded sha256" in caplog.text

    # the archive changes on disk; the stamp is gone, so the next fetch verifies it again
    archive = to / "downloads/coco/val2017.zip"
    archive.write_bytes(archive.read_bytes()[:-10] + b"0123456789")
    (to / "coco/.mmloom-fetch/val2017.zip.done").unlink()
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch for val2017.zip" in err
    assert str(to / "coco/checksums.tsv") in err

    # --register-checksums copies the recorded rows into the project's file
    assert fetch_coco(files, to, sums, "--register-checksums") == 0
    committed = (sums / "coco/checksums.tsv").read_text()
    assert published.sha(published.http[COCO_VAL]) in committed


def test_zip_slip_archive_is_refused(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    evil = zip_bytes(
        {
            "annotations/captions_val2017.json": b"{}",
            "../../escaped.txt": b"owned",
            "annotations/instances_val2017.json": b"{}",
        }
    )
    files.put(COCO_ANN, evil)
    sums = checksums_dir(tmp_path, published, known=False)
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    assert "refusing to extract annotations_trainval2017.zip" in err
    assert "'../../escaped.txt' leaves the target folder" in err
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (to / "coco/annotations").exists()  # zips are checked in full first


def test_disk_space_is_checked_before_downloading(tmp_path, serve, published, capsys):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    tsv = sums / "coco/checksums.tsv"
    lines = tsv.read_text().splitlines()
    url, _, sha, name = lines[1].split("\t")
    lines[1] = "\t".join((url, str(10**18), sha, name))  # an exabyte
    tsv.write_text("\n".join(lines) + "\n")
    assert fetch_coco(files, tmp_path / "data", sums) == 2
    assert "not enough disk space for coco/val2017.zip" in capsys.readouterr().err
    assert not gets(files, COCO_VAL)


def test_hand_files_are_listed_after_everything_a_script_can_get(
    tmp_path, serve, published, capsys
):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    argv = ["fetch", "vist", "wikihow", "--to", str(to), "--checksums-dir", str(sums)]
    argv += ["--mirror", files.url, "--no-progress"]
    assert main(argv) == 3  # scriptable files fetched, files to get by hand remain
    out = capsys.readouterr().out
    for path in (
        to / "manual/vist/test_images.tar.gz",
        to / "manual/wikihow/WikihowText_data.json",
        to / "manual/wikihow/wiki_images.zip",
    ):
        assert f"-> put it at {path}\n" in out + "\n"
    assert "drive.google.com" in out
    # meanwhile VIST's annotations were downloaded and laid out
    assert (to / "vist/sis/test.story-in-sequence.json").is_file()
    assert (to / "vist/dii/test.description-in-isolation.json").is_file()
    assert not (to / "mmloom.yaml").exists()  # no source is complete yet

    put_manual(to / "manual", published, "wikihow")
    assert main(argv) == 3  # VIST's images are still missing
    assert set(yaml.safe_load((to / "mmloom.yaml").read_text())["sources"]) == {"wikihow"}
    assert (to / "wikihow/wiki_images/train").is_dir()
    out = capsys.readouterr().out
    assert "test_images.tar.gz" in out and "wiki_images.zip" not in out

    put_manual(to / "manual", published, "vist")
    assert main(argv) == 0
    assert set(yaml.safe_load((to / "mmloom.yaml").read_text())["sources"]) == {"vist", "wikihow"}
    assert len(list((to / "vist/images/test").iterdir())) == 42
    assert len(gets(files, VIST_SIS)) == 1  # fetched once, on the first run


@pytest.mark.parametrize(
    "split, message",
    [
        (["--split", "coco=test"], "coco has the splits val, train"),
        (["--split", "coco=val,train"], "a coco build reads one split"),
        (["--split", "remi=test"], "'remi' is not among the sources"),
    ],
)
def test_bad_split_is_a_clear_error(tmp_path, split, message, capsys):
    assert main(["fetch", "coco", "--to", str(tmp_path), *split]) == 2
    assert message in capsys.readouterr().err


def test_split_selects_only_that_splits_files(tmp_path):
    from pipelines.fetch.cli import choose_splits
    from pipelines.fetch.sources import specs

    splits = choose_splits(["vist", "coco", "remi"], ["vist=val", "train"])
    assert splits == {"vist": ("val",), "coco": ("train",), "remi": ("train",)}
    vist = specs()["vist"].plan(("test",), {})
    assert [j.filename for j in vist.jobs] == [
        "SIS-with-labels.tar.gz",
        "DII-with-labels.tar.gz",
        "test_images.tar.gz",
    ]
    train = specs()["vist"].plan(("train",), {})
    assert len([j for j in train.jobs if j.manual]) == 13
    coco = specs()["coco"].plan(("val",), {})
    assert [j.filename for j in coco.jobs] == ["annotations_trainval2017.zip", "val2017.zip"]


def test_progress_bar_per_file_on_stderr(tmp_path, serve, published, capsys):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    argv = ["fetch", "coco", "--to", str(tmp_path / "data"), "--checksums-dir", str(sums)]
    assert main([*argv, "--mirror", files.url]) == 0
    err = capsys.readouterr().err
    for name in ("coco/annotations_trainval2017.zip", "coco/val2017.zip"):
        assert f"{name}: 100%" in err
