"""Hostile sources: endless bodies, archive bombs, corrupt and escaping archives, interrupts.

What each test holds ``mmloom fetch`` to: it never writes more than a file's known size (or
the caps), leaves nothing partial behind, answers with one message and exit status 2, and
trusts a checksum only once its file was laid out, so that a refused download never
becomes the reference a genuine file is measured against.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.fetch.extract import (
    ArchiveTooLargeError,
    CorruptArchiveError,
    UnsafeArchiveError,
    extract,
    staging_dir,
)
from pipelines.fetch.http import DownloadTooLargeError, SizeBound, _receive
from pipelines.fetch.limits import FetchLimits, parse_size
from schemas.errors import MmloomError
from tests.fetch.conftest import (
    COCO_ANN,
    COCO_VAL,
    MV_TESTMINI,
    REPO,
    VIST_SIS,
    checksums_dir,
    fetch_cmd,
    fetch_coco,
    fetch_env,
    fetch_in_process,
    gets,
    put_manual,
    run_fetch,
    tar_gz_bytes,
    zip_bytes,
)

BOMB = 8 << 20  # 8 MiB of zeros: ~8 KB compressed, refused under a 4 MB cap
CAP = ["--max-unpacked", "4MB"]


def leftovers(root: Path) -> list[Path]:
    """Anything a cut-short fetch could leave: staging folders, temporary and partial files."""
    patterns = (".mmloom-unpacking-*", "*.extracting", "*.part", "*.incomplete", "*.tmp")
    return sorted(p for pat in patterns for p in root.rglob(pat))


def recorded(to: Path, source: str) -> str:
    path = to / source / "checksums.tsv"
    return path.read_text() if path.is_file() else ""


def no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert err.count("error:") == 1, err


# ---------------------------------------------------------------- downloads


def test_endless_body_is_cut_at_the_checksum_size(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)  # the rows give the sizes
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("endless", 0))
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    size = len(published.http[COCO_ANN])
    assert f"sent more than the {size} bytes that {sums / 'coco/checksums.tsv'} gives" in err
    assert list((to / "downloads/coco").iterdir()) == []  # neither the file nor a .part
    assert len(gets(files, COCO_ANN)) == 1  # refused at once, not retried
    assert not gets(files, COCO_VAL)

    files.put(COCO_ANN, published.http[COCO_ANN])  # the host is fine again
    assert fetch_coco(files, to, sums) == 0


def test_endless_body_of_unknown_size_is_cut_at_the_cap(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("endless", 0))
    assert fetch_coco(files, to, sums, "--max-download", "2MB") == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "sent more than 2.0 MB, the cap for a file whose size no checksums row gives" in err
    assert "--max-download SIZE (or MMLOOM_FETCH_MAX_DOWNLOAD)" in err
    assert list((to / "downloads/coco").iterdir()) == []
    assert recorded(to, "coco") == ""


def test_announced_length_over_the_cap_is_refused_before_writing(
    tmp_path, serve, published, capsys, monkeypatch
):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    monkeypatch.setenv("MMLOOM_FETCH_MAX_DOWNLOAD", "1KB")  # the option's environment default
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    assert "sent more than 1.0 KB" in err
    assert list((to / "downloads/coco").iterdir()) == []


class EndlessBody:
    """A response body that never ends and notes the partial file's size at each read."""

    def __init__(self, part: Path) -> None:
        self.part = part
        self.sizes: list[int] = []

    def read1(self, n: int) -> bytes:
        self.sizes.append(self.part.stat().st_size if self.part.exists() else 0)
        return bytes(min(n, 300))


def test_no_byte_past_the_known_size_is_ever_written(tmp_path):
    part = tmp_path / "f.part"
    body = EndlessBody(part)
    with pytest.raises(DownloadTooLargeError):
        _receive(body, part, "wb", 0, None, SizeBound(1000, True, "t.tsv"), False, "f", "u")
    assert body.sizes == [0, 300, 600, 900]  # the read that would pass 1000 refused it
    assert not part.exists()


def test_endless_hub_file_is_cut_at_the_hub_size(tmp_path, serve, published):
    """A hub file's CDN sends without end: cut at the size the hub announced, nothing kept."""
    files, hub = serve
    data = published.hub[("mehrankazemi/ReMI", "test.parquet")]
    hub.put("mehrankazemi/ReMI", "test.parquet", data, fault=("endless", 0))
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)  # no row for ReMI: the hub gives the size
    env = fetch_env(files, hub, tmp_path)
    result = run_fetch(env, "remi", "--to", str(to), "--checksums-dir", str(sums))
    assert result.returncode == 2
    no_traceback(result.stderr)
    assert f"sent more than the {len(data)} bytes that the hub's metadata gives" in result.stderr
    assert not list((to / "downloads/remi").rglob("test.parquet"))
    assert leftovers(to) == []
    assert recorded(to, "remi") == ""


# ---------------------------------------------------------------- archive bombs


def test_tar_gz_bomb_is_refused_with_nothing_left(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    put_manual(to / "manual", published, "vist")
    sums = checksums_dir(tmp_path, published, known=False)
    good = tar_gz_bytes({"sis/test.story-in-sequence.json": b"{}"})
    # two members that both map to sis/test.story-in-sequence.json: the first is written
    # into the staging folder, the second (the bomb) passes the cap
    files.put(
        VIST_SIS,
        tar_gz_bytes(
            {"a/test.story-in-sequence.json": b"{}", "b/test.story-in-sequence.json": bytes(BOMB)}
        ),
    )
    assert fetch_in_process(files, "vist", to, sums, *CAP) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "refusing to extract SIS-with-labels.tar.gz: it unpacks to more than 4.0 MB" in err
    assert "'b/test.story-in-sequence.json'" in err
    assert "--max-unpacked SIZE (or MMLOOM_FETCH_MAX_UNPACKED)" in err
    assert "Its checksum was not recorded" in err
    assert not (to / "vist/sis").exists()
    assert leftovers(tmp_path) == []
    assert "SIS-with-labels" not in recorded(to, "vist")
    assert not (to / "vist/.mmloom-fetch/SIS-with-labels.tar.gz.done").exists()
    # over a cap is not hostile by itself: the archive is kept, and a larger cap takes it
    assert (to / "downloads/vist/SIS-with-labels.tar.gz").is_file()
    assert not (to / "downloads/vist/.bad").exists()

    files.put(VIST_SIS, good)  # the publisher's archive (a new download: the old is refused)
    (to / "downloads/vist/SIS-with-labels.tar.gz").unlink()
    assert fetch_in_process(files, "vist", to, sums, *CAP) == 0
    assert (to / "vist/sis/test.story-in-sequence.json").read_bytes() == b"{}"
    assert published.sha(good) in recorded(to, "vist")


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    bomb = zip_bytes(
        {
            "annotations/instances_val2017.json": b"{}",
            "annotations/captions_val2017.json": bytes(BOMB),
        }
    )
    assert len(bomb) < 64 << 10
    files.put(COCO_ANN, bomb)
    assert fetch_coco(files, to, sums, *CAP) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "refusing to extract annotations_trainval2017.zip: it unpacks to more than 4.0 MB" in err
    assert not (to / "coco/annotations").exists()
    assert leftovers(tmp_path) == []
    assert recorded(to, "coco") == ""
    assert not gets(files, COCO_VAL)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_member_count_is_capped(tmp_path, kind):
    members = {f"many/{i}.txt": b"x" for i in range(30)}
    archive = tmp_path / f"many.{kind}"
    archive.write_bytes(zip_bytes(members) if kind == "zip" else tar_gz_bytes(members))
    dest = tmp_path / "out"
    with pytest.raises(ArchiveTooLargeError, match=r"holds (30|more than 10) members.*cap"):
        extract(archive, dest, limits=FetchLimits(max_members=10))
    assert not dest.exists()
    assert leftovers(tmp_path) == []
    assert len(extract(archive, dest, limits=FetchLimits(max_members=30))) == 30


# ---------------------------------------------------------------- trust


def test_corrupt_download_is_not_trusted_and_the_genuine_file_is(
    tmp_path, serve, published, capsys
):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    page = b"<html><body>Sign in to continue</body></html>"  # what a host sends instead
    files.put(COCO_ANN, page)
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "annotations_trainval2017.zip cannot be read as a zip archive" in err
    assert "Its checksum was not recorded" in err
    assert recorded(to, "coco") == ""
    assert [p.read_bytes() for p in (to / "downloads/coco/.bad").iterdir()] == [page]

    genuine = published.http[COCO_ANN]
    files.put(COCO_ANN, genuine)
    assert fetch_coco(files, to, sums) == 0
    assert (to / "downloads/coco/annotations_trainval2017.zip").read_bytes() == genuine
    assert f"\t{len(genuine)}\t{published.sha(genuine)}\t" in recorded(to, "coco")
    assert [p.read_bytes() for p in (to / "downloads/coco/.bad").iterdir()] == [page]
    assert (to / "coco/annotations/captions_val2017.json").is_file()


def test_truncated_tar_gz_leaves_nothing_half_unpacked(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    put_manual(to / "manual", published, "vist")
    sums = checksums_dir(tmp_path, published, known=False)
    noise = os.urandom(1 << 16)  # does not compress: the cut falls inside this member
    whole = tar_gz_bytes(
        {"a/test.story-in-sequence.json": b"{}", "b/test.story-in-sequence.json": noise}
    )
    files.put(VIST_SIS, whole[: len(whole) - 4000])  # cut inside the second member
    assert fetch_in_process(files, "vist", to, sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "SIS-with-labels.tar.gz cannot be read as a tar archive" in err
    assert not (to / "vist/sis").exists()  # the first member was not kept either
    assert leftovers(tmp_path) == []
    assert recorded(to, "vist") == ""

    files.put(VIST_SIS, published.http[VIST_SIS])
    assert fetch_in_process(files, "vist", to, sums) == 0
    assert (to / "vist/sis/test.story-in-sequence.json").is_file()
    bad = list((to / "downloads/vist/.bad").iterdir())
    assert [p.read_bytes() for p in bad] == [whole[: len(whole) - 4000]]


def test_escaping_archive_is_not_trusted_and_the_genuine_file_is(
    tmp_path, serve, published, capsys
):
    files, _ = serve
    to = tmp_path / "data"
    evil = zip_bytes({"annotations/captions_val2017.json": b"{}", "../../escaped.txt": b"owned"})
    files.put(COCO_ANN, evil)
    sums = checksums_dir(tmp_path, published, known=False)
    assert fetch_coco(files, to, sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "'../../escaped.txt' leaves the target folder" in err
    assert "Its checksum was not recorded" in err
    assert recorded(to, "coco") == ""

    genuine = published.http[COCO_ANN]
    files.put(COCO_ANN, genuine)
    assert fetch_coco(files, to, sums) == 0  # not a checksum mismatch against the evil zip
    assert published.sha(genuine) in recorded(to, "coco")
    assert published.sha(evil) not in recorded(to, "coco")
    assert [p.read_bytes() for p in (to / "downloads/coco/.bad").iterdir()] == [evil]
    assert not list(tmp_path.rglob("escaped.txt"))


def test_truncated_json_is_not_trusted(tmp_path, serve, published, capsys):
    """A plain file is laid out only when it looks whole (here: a JSON cut short)."""
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published, known=False)
    whole = published.http[MV_TESTMINI]
    files.put(MV_TESTMINI, whole[: len(whole) // 2])
    argv = ["--mathvista-layout", "github"]
    assert fetch_in_process(files, "mathvista", to, sums, *argv) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "testmini.json is not a whole json file" in err
    assert recorded(to, "mathvista") == ""
    assert not (to / "mathvista/data/testmini.json").exists()


# ---------------------------------------------------------------- interruptions


class Interrupt:
    """A select function that lets two members through, then acts as Ctrl-C would."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, name: str) -> str | None:
        self.seen += 1
        if self.seen > 2:
            raise KeyboardInterrupt
        return name


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_interrupted_extraction_leaves_the_target_as_it_was(tmp_path, kind):
    members = {f"part/{i}.txt": b"new" for i in range(5)}
    archive = tmp_path / f"a.{kind}"
    archive.write_bytes(zip_bytes(members) if kind == "zip" else tar_gz_bytes(members))
    dest = tmp_path / "out"
    (dest / "part").mkdir(parents=True)
    (dest / "part/0.txt").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        extract(archive, dest, Interrupt())
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "part",
        "part/0.txt",
    ]
    assert (dest / "part/0.txt").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_staging_left_by_a_killed_run_is_removed(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz_bytes({"x/keep.json": b"{}"}))
    dest = tmp_path / "out"
    stale = staging_dir(archive, dest)
    (stale / "x").mkdir(parents=True)
    (stale / "x/half.json").write_bytes(b"{")  # what a SIGKILL mid-extract leaves
    assert extract(archive, dest) == [(dest / "x/keep.json").resolve()]
    assert not stale.exists()
    assert not (dest / "x/half.json").exists()


@pytest.mark.parametrize("sig, word", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "SIGTERM")])
def test_interrupt_is_one_message_and_keeps_the_partial_download(
    tmp_path, serve, published, sig, word
):
    files, hub = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    cut = 4096
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("hang", cut))
    proc = subprocess.Popen(
        fetch_cmd("coco", "--to", str(to), "--checksums-dir", str(sums)),
        env=fetch_env(files, hub, tmp_path),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = to / "downloads/coco/annotations_trainval2017.zip.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == cut):
        assert proc.poll() is None, "fetch ended before the server stalled"
        assert time.monotonic() < deadline, "the partial file never reached the cut"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    no_traceback(err)
    assert word in err and "Run the same command again" in err
    assert part.stat().st_size == cut  # kept for the next run to resume


# ---------------------------------------------------------------- options


def test_sizes_parse_and_bad_ones_are_one_message(tmp_path, capsys):
    assert parse_size("32GB", "x") == 32 * 10**9
    assert parse_size("1.5 MiB", "x") == 3 << 19
    assert parse_size("4096", "x") == 4096
    for bad in ("lots", "-1MB", "0", "12 parsecs"):
        with pytest.raises(MmloomError):
            parse_size(bad, "--max-unpacked")
    assert main(["fetch", "coco", "--to", str(tmp_path), "--max-unpacked", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--max-unpacked 'lots' is not a size" in err
    assert main(["fetch", "coco", "--to", str(tmp_path), "--max-members", "-3"]) == 2
    assert "--max-members '-3' is not a positive whole number" in capsys.readouterr().err


def test_gzip_of_garbage_is_a_corrupt_archive(tmp_path):
    archive = tmp_path / "g.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar at all " * 100))
    with pytest.raises(CorruptArchiveError, match="cannot be read as a tar archive"):
        extract(archive, tmp_path / "out")
    archive = tmp_path / "z.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"hello world" * 100)
    data = bytearray(buf.getvalue())
    data[40] ^= 0xFF  # inside the member's data: the CRC check fails on reading it
    archive.write_bytes(bytes(data))
    with pytest.raises(CorruptArchiveError, match="cannot be read as a zip archive"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_refused_hand_downloaded_file_stays_and_is_not_trusted(tmp_path, serve, published, capsys):
    files, _ = serve
    to = tmp_path / "data"
    put_manual(to / "manual", published, "vist")
    manual = to / "manual/vist/test_images.tar.gz"
    manual.write_bytes(b"<html>Google Drive can't scan this file for viruses</html>")
    sums = checksums_dir(tmp_path, published, known=False)
    assert fetch_in_process(files, "vist", to, sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "test_images.tar.gz cannot be read as a tar archive" in err
    assert "put a good copy of test_images.tar.gz from https://drive.google.com" in err
    assert manual.is_file()  # the person's file is theirs to replace
    assert "test_images.tar.gz" not in recorded(to, "vist")
    assert not (to / "vist/images").exists()
    assert leftovers(tmp_path) == []


def test_a_folder_that_cannot_be_made_is_one_message(tmp_path, serve, published, capsys):
    files, _ = serve
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where --to needs a folder")
    sums = checksums_dir(tmp_path, published)
    assert fetch_coco(files, blocker / "data", sums) == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert "could not write the fetched files" in err and "Not a directory" in err


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_members_that_clash_are_refused_not_blamed_on_the_disk(tmp_path, kind):
    members = {"x/a": b"a file", "x/a/b.txt": b"a file inside that file"}
    archive = tmp_path / f"clash.{kind}"
    archive.write_bytes(zip_bytes(members) if kind == "zip" else tar_gz_bytes(members))
    with pytest.raises(UnsafeArchiveError, match="is both a file and a folder"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
