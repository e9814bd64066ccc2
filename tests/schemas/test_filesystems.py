"""schemas.filesystems answers local paths as Beam's FileSystems does, without Beam."""

from __future__ import annotations

import os

import pytest
from apache_beam.io.filesystem import FileSystem as BeamFileSystem
from apache_beam.io.filesystems import FileSystems as Beam

from schemas.filesystems import FileSystems, is_local, translate_pattern

PATTERNS = [
    "*", "**", "*.txt", "sub/*", "sub/**", "sub/", "?.txt", "[ab].*", "[!a]*", "[^a]*",
    "[]x]*", "[!]x]*", "[unclosed", "**.json", "sub/*/*.json", "sub/**/d.json", "a.txt",
    "sub", "missing.txt", "nothere/*", "we?ird?.txt", "we*", "*.*.gz",
]  # fmt: skip


@pytest.fixture
def tree(tmp_path):
    for rel, data in {
        "a.txt": b"a", "b.parquet": b"bb", "c.tar.gz": b"ccc", "we[ird].txt": b"w",
        "sub/c.txt": b"cccc", "sub/deep/d.json": b"{}", "sub/deep/e.txt": b"",
        "]x.txt": b"x",
    }.items():  # fmt: skip
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "empty").mkdir()
    return str(tmp_path)


def _listing(results):
    return [
        (r.pattern, [(m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in r.metadata_list])
        for r in results
    ]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_translate_pattern_is_beams(pattern):
    assert translate_pattern(pattern) == BeamFileSystem.translate_pattern(pattern)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_match_is_beams(tree, pattern):
    full = os.path.join(tree, pattern)
    ours, beams = FileSystems.match([full]), Beam.match([full])
    assert _listing(ours) == _listing(beams)  # same files, sizes, times and order


def test_match_with_limits_and_several_patterns_is_beams(tree):
    patterns = [os.path.join(tree, p) for p in ("**", "sub/**", "*.txt")]
    for limits in ([1, 2, None], [0, 5, 1], None):
        assert _listing(FileSystems.match(patterns, limits)) == _listing(
            Beam.match(patterns, limits)
        )
    assert FileSystems.match([]) == Beam.match([]) == []


def test_join_exists_open_and_create_are_beams(tree):
    assert FileSystems.join(tree, "sub", "c.txt") == Beam.join(tree, "sub", "c.txt")
    for rel in ("a.txt", "sub", "empty", "missing", ""):
        path = os.path.join(tree, rel)
        assert FileSystems.exists(path) == Beam.exists(path)
    with FileSystems.open(os.path.join(tree, "sub/c.txt"), compression_type="uncompressed") as f:
        assert f.read() == b"cccc"
    with pytest.raises(FileNotFoundError):
        FileSystems.open(os.path.join(tree, "missing"), compression_type="uncompressed")
    new = os.path.join(tree, "new", "deeper", "f.bin")  # folders made, as Beam makes them
    with FileSystems.create(new, compression_type="uncompressed") as f:
        f.write(b"written")
    with Beam.open(new, compression_type="uncompressed") as f:
        assert f.read() == b"written"


def test_compressed_reads_and_uris_go_to_beam(tree):
    import gzip

    path = os.path.join(tree, "z.txt.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(b"unzipped"))
    with FileSystems.open(path) as f:  # compression "auto", by extension: Beam's codecs
        assert f.read() == b"unzipped"
    assert is_local("/a/b") and is_local("rel/x://y") and not is_local("gs://bucket/x")
    for call in (lambda p: FileSystems.exists(p), lambda p: Beam.exists(p)):
        with pytest.raises(ValueError, match="Unable to get filesystem"):
            call("nosuchscheme://bucket/build")
