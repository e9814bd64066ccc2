"""Pure parts of fetch: safe extraction (zip-slip, links) and the checksums files."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from pipelines.fetch.checksums import Checksum, ChecksumBook, parse_checksums, write_checksums
from pipelines.fetch.extract import UnsafeArchiveError, extract
from pipelines.fetch.http import mirror_url
from schemas.errors import MmloomError
from tests.fetch.conftest import tar_gz_bytes, zip_bytes


def zip_with_symlink(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/a.txt", b"a")
        info = zipfile.ZipInfo("ok/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    path = tmp_path / "links.zip"
    path.write_bytes(buf.getvalue())
    return path


def tar_with(tmp_path, kind: bytes, name: str, target: str = "") -> object:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tf.addfile(info)
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize(
    "member", ["../escape.txt", "a/../../escape.txt", "/abs/escape.txt", "C:/escape.txt"]
)
def test_zip_members_leaving_the_folder_are_refused(tmp_path, member):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"fine.txt": b"x", member: b"owned"}))
    dest = tmp_path / "out" / "deeper"
    with pytest.raises(UnsafeArchiveError, match=r"refusing to extract evil\.zip"):
        extract(archive, dest)
    assert not list(tmp_path.rglob("escape.txt"))
    assert not dest.exists()  # nothing written from a refused zip


def test_zip_symlink_is_refused(tmp_path):
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(zip_with_symlink(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kind, name, target, why",
    [
        (tarfile.SYMTYPE, "images/x.jpg", "/etc/passwd", "is a link"),
        (tarfile.LNKTYPE, "images/y.jpg", "../../etc/passwd", "is a link"),
        (tarfile.REGTYPE, "../../escape.txt", "", "leaves the target folder"),
        (tarfile.FIFOTYPE, "images/fifo", "", "not a regular file"),
    ],
)
def test_tar_links_and_escapes_are_refused(tmp_path, kind, name, target, why):
    with pytest.raises(UnsafeArchiveError, match=why):
        extract(tar_with(tmp_path, kind, name, target), tmp_path / "out")
    assert not list(tmp_path.rglob("escape.txt"))


def test_select_maps_and_skips_members(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz_bytes({"x/keep.json": b"k", "x/skip.json": b"s"}))
    written = extract(archive, tmp_path / "out", lambda n: "kept/k.json" if "keep" in n else None)
    assert written == [(tmp_path / "out/kept/k.json").resolve()]
    assert (tmp_path / "out/kept/k.json").read_bytes() == b"k"
    # a select function cannot be used to escape either
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "out", lambda n: "../up.json")


def test_checksums_round_trip_and_errors(tmp_path):
    text = "# comment\nhttp://h/a.zip\t12\t" + "a" * 64 + "\ta.zip\n\tx\t-\tmanual.json\n"
    with pytest.raises(MmloomError, match="size 'x' is not a number"):
        parse_checksums(text, "t.tsv")
    rows = parse_checksums(text.replace("\tx\t", "\t-\t"), "t.tsv")
    assert rows["a.zip"] == Checksum("http://h/a.zip", 12, "a" * 64, "a.zip")
    assert rows["manual.json"] == Checksum("", None, None, "manual.json")
    with pytest.raises(MmloomError, match="4 tab-separated columns"):
        parse_checksums("http://h/a.zip 12 abc a.zip\n", "t.tsv")
    with pytest.raises(MmloomError, match="not 64 lower-case hex"):
        parse_checksums("u\t1\tABC\tf\n", "t.tsv")
    path = tmp_path / "c.tsv"
    path.write_text("# kept comment\n")
    write_checksums(path, rows)
    assert path.read_text().startswith("# kept comment\n")
    assert parse_checksums(path.read_text(), str(path)) == rows


def test_committed_known_row_wins_over_recorded(tmp_path):
    sums = tmp_path / "sums"
    (sums / "s").mkdir(parents=True)
    (sums / "s/checksums.tsv").write_text(f"http://h/a\t1\t{'a' * 64}\ta\nhttp://h/b\t-\t-\tb\n")
    book = ChecksumBook("s", tmp_path / "data", sums)
    book.record(Checksum("http://h/a", 1, "b" * 64, "a"))
    book.record(Checksum("http://h/b@pinned", 2, "c" * 64, "b"))
    book = ChecksumBook("s", tmp_path / "data", sums)
    assert book.expected("a").sha256 == "a" * 64
    assert book.expected("b").sha256 == "c" * 64
    assert book.url("b", "default") == "http://h/b@pinned"
    assert book.expected("c") is None


def test_mirror_url():
    assert mirror_url("https://a.org/x/y.zip?q=1", "http://127.0.0.1:9/") == (
        "http://127.0.0.1:9/a.org/x/y.zip?q=1"
    )
    assert mirror_url("hf://datasets/a/b@main/x", "http://m") == "hf://datasets/a/b@main/x"
    assert mirror_url("https://a.org/x", None) == "https://a.org/x"


def test_fetch_is_a_registered_command(capsys):
    from pipelines.cli import main

    assert main(["--help"]) == 0
    assert "fetch" in capsys.readouterr().out
    assert main(["fetch", "--help"]) == 0  # delegated commands return their status
    assert "usage: mmloom fetch" in capsys.readouterr().out
