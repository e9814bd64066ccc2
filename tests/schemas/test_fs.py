"""``schemas.fs``'s bounded reads: regular files only, symlinks kept inside their root, a size
cap on every read, on local paths and through a Beam filesystem with its own scheme."""

from __future__ import annotations

import gzip
import os
import signal
import threading

import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem
from apache_beam.io.filesystems import FileSystems

from schemas.errors import RecordError
from schemas.fs import glob_root, match, open_bounded, read_bytes, read_text


@pytest.fixture(autouse=True)
def _alarm():
    """A read that blocks (a FIFO opened without O_NONBLOCK) fails the test after 10 s."""

    def hang(*_):
        raise TimeoutError("a read blocked")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _reason(call) -> str:
    with pytest.raises(RecordError) as err:
        call()
    return err.value.reason


def test_a_regular_file_reads(tmp_path):
    (tmp_path / "a.txt").write_text("héllo")
    assert read_text(str(tmp_path / "a.txt"), max_bytes=100, root=str(tmp_path)) == "héllo"
    assert read_bytes(str(tmp_path / "a.txt"), max_bytes=6) == "héllo".encode()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert _reason(lambda: read_bytes(str(tmp_path / "fifo"), max_bytes=10)) == (
        "not_a_regular_file"
    )


def test_a_device_and_a_folder_are_refused(tmp_path):
    (tmp_path / "zero").symlink_to("/dev/zero")
    assert _reason(lambda: read_bytes(str(tmp_path / "zero"), max_bytes=10)) == (
        "not_a_regular_file"
    )
    assert _reason(lambda: read_bytes(str(tmp_path), max_bytes=10)) == "not_a_regular_file"


def test_a_symlink_out_of_the_root_is_refused_and_one_inside_reads(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / "x").write_bytes(b"secret")
    (root / "out").symlink_to(elsewhere / "x")
    (root / "real").write_bytes(b"ok")
    (root / "sub").mkdir()
    (root / "sub" / "in").symlink_to("../real")
    with pytest.raises(RecordError) as err:
        read_bytes(str(root / "out"), max_bytes=10, root=str(root))
    assert err.value.reason == "path_escapes_root"
    assert str(tmp_path) not in err.value.detail  # named relative to the root
    assert read_bytes(str(root / "sub" / "in"), max_bytes=10, root=str(root)) == b"ok"
    assert read_bytes(str(root / "out"), max_bytes=10) == b"secret"  # no root: no check


def test_the_root_may_itself_be_a_symlink(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    assert read_bytes(str(tmp_path / "link" / "f"), max_bytes=1, root=str(tmp_path / "link"))


def test_a_file_over_the_cap_is_refused(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 11)
    assert _reason(lambda: read_bytes(str(tmp_path / "big"), max_bytes=10)) == "file_too_large"


def test_a_file_that_grows_past_the_cap_is_refused_when_read(tmp_path):
    path = tmp_path / "grows"
    path.write_bytes(b"x" * 10)
    with open_bounded(str(path), max_bytes=10) as f:
        with open(path, "ab") as g:
            g.write(b"y" * 1000)
        with pytest.raises(RecordError) as err:
            f.read()
    assert err.value.reason == "file_too_large"


def test_a_compressed_file_is_capped_on_what_it_expands_to(tmp_path):
    path = tmp_path / "lines.json.gz"
    path.write_bytes(gzip.compress(b"a\n" * 10_000))
    with open_bounded(str(path), max_bytes=30_000, decompress=True) as f:
        assert f.readline() == b"a\n"
    with (
        open_bounded(str(path), max_bytes=1_000, decompress=True) as f,
        pytest.raises(RecordError) as err,
    ):
        f.read()
    assert err.value.reason == "file_too_large"


def test_a_parquet_reader_can_seek_a_bounded_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "t.parquet")
    with open_bounded(str(tmp_path / "t.parquet"), max_bytes=1 << 20) as f:
        assert pq.ParquetFile(f).read().num_rows == 3


@pytest.mark.parametrize(
    "pattern, root",
    [
        ("/d/sis/*.json", "/d/sis"),
        ("/d/*/x.parquet", "/d"),
        ("/d/file.json", None),
        (None, None),
        ("gs://b/remi/*.parquet", "gs://b/remi"),
    ],
)
def test_glob_root(pattern, root):
    assert glob_root(pattern) == root


# --------------------------------------------------------------- a non-local filesystem

_OBJECTS: dict[str, bytes] = {}


class MemTestFileSystem(FileSystem):
    """A test-only Beam filesystem (``memtest://``): objects in a dict. Beam finds it among
    ``FileSystem``'s subclasses by its scheme."""

    @classmethod
    def scheme(cls):
        return "memtest"

    def join(self, base, *paths):
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path):
        return path.rsplit("/", 1)

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path, data in _OBJECTS.items():
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data))

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        import io

        return io.BytesIO(_OBJECTS[path])

    def exists(self, path):
        return path in _OBJECTS

    def size(self, path):
        return len(_OBJECTS[path])

    def metadata(self, path):
        return FileMetadata(path, len(_OBJECTS[path]))

    def mkdirs(self, path):
        raise NotImplementedError

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        raise NotImplementedError

    def copy(self, source_file_names, destination_file_names):
        raise NotImplementedError

    def rename(self, source_file_names, destination_file_names):
        raise NotImplementedError

    def last_updated(self, path):
        raise NotImplementedError

    def checksum(self, path):
        raise NotImplementedError

    def delete(self, paths):
        raise NotImplementedError


@pytest.fixture
def objects():
    _OBJECTS.clear()
    yield _OBJECTS
    _OBJECTS.clear()


def test_the_cap_holds_through_a_beam_filesystem(objects):
    objects["memtest://b/small"] = b"abc"
    objects["memtest://b/big"] = b"x" * 100
    assert FileSystems.exists("memtest://b/small")  # Beam found the filesystem by its scheme
    assert read_bytes("memtest://b/small", max_bytes=3, root="memtest://b") == b"abc"
    with pytest.raises(RecordError) as err:
        read_bytes("memtest://b/big", max_bytes=99, root="memtest://b")
    assert err.value.reason == "file_too_large" and err.value.detail.startswith("big:")
    with pytest.raises(FileNotFoundError):
        read_bytes("memtest://b/none", max_bytes=10)


def test_an_object_that_grows_after_the_size_check_is_refused(objects, monkeypatch):
    objects["memtest://b/grows"] = b"x" * 10
    real_open = MemTestFileSystem.open

    def grown(self, path, *args, **kwargs):
        objects[path] = b"x" * 1000  # written between the size check and the read
        return real_open(self, path, *args, **kwargs)

    monkeypatch.setattr(MemTestFileSystem, "open", grown)
    with pytest.raises(RecordError) as err:
        read_bytes("memtest://b/grows", max_bytes=10)
    assert err.value.reason == "file_too_large"


ODD = ["a\\b.parquet", "c[1].parquet", "d*e.parquet", "f?g.parquet", "h i.parquet", "p.parquet"]


def test_match_finds_every_name_whatever_it_holds(tmp_path):
    """Issue 19: Beam's matcher never matched a name with a backslash; a link to nowhere is
    a match too (its reader makes it a dead letter), and a folder is not."""
    for name in ODD:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dead.parquet").symlink_to("nowhere")
    (tmp_path / "dir.parquet").mkdir()
    (tmp_path / "dir.parquet" / "deep.parquet").write_bytes(b"x")
    (tmp_path / "other.txt").write_bytes(b"x")
    base = str(tmp_path)
    assert match(f"{base}/*.parquet") == sorted(f"{base}/{n}" for n in [*ODD, "dead.parquet"])
    assert f"{base}/dir.parquet/deep.parquet" in match(f"{base}/**.parquet")
    assert match(f"{base}/*/*.parquet") == [f"{base}/dir.parquet/deep.parquet"]
    assert match(f"{base}/c[[]1].parquet") == [f"{base}/c[1].parquet"]  # an escaped [
    assert match(f"{base}/[!acdfhp]*") == [f"{base}/other.txt"]
    assert match(f"{base}/?.parquet") == [f"{base}/p.parquet"]
    assert match(f"{base}/p.parquet") == [f"{base}/p.parquet"]  # no wildcard: the path
    assert match(f"{base}/nothing/*.parquet") == []
