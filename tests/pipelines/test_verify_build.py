"""`mmloom verify` on builds: every kind of file tampered with is caught, and the quick check
that show and publish run catches what it can without hashing (issue 19)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from schemas.buildio import DamagedFileError, iter_parquet_rows, read_records

pytestmark = pytest.mark.slow


def _shard(build: Path) -> Path:
    return sorted((build / "records").glob("*.parquet"))[0]


def _dead(build: Path) -> Path:
    return sorted((build / "dead_letters").glob("*.jsonl"))[0]


def _image(build: Path) -> Path:
    ref = next(im["path"] for r in read_records(str(build)) for im in r["images"])
    return build / ref


def _fewer_rows(build: Path) -> str:
    shard = _shard(build)
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 5), shard, row_group_size=1000)
    return f"records/{shard.name}"


def _same_size_shard(build: Path) -> str:
    """Change one byte of the writer's name in the Parquet footer: same size, same rows, the
    file still reads; only its sha256 tells."""
    shard = _shard(build)
    data = bytearray(shard.read_bytes())
    at = data.rfind(b"parquet-cpp-arrow")
    assert at > 0
    data[at] = ord("P")
    shard.write_bytes(bytes(data))
    assert pq.ParquetFile(shard).metadata.num_rows > 0
    return f"records/{shard.name}"


def _missing_shard(build: Path) -> str:
    shard = _shard(build)
    shard.unlink()
    return f"records/{shard.name}"


def _extra_shard(build: Path) -> str:
    shutil.copy(_shard(build), build / "records" / "records-extra.parquet")
    return "records/records-extra.parquet"


def _dead_letter_added(build: Path) -> str:
    dead = _dead(build)
    line = dead.read_text().splitlines()[0]
    dead.write_text(dead.read_text() + line + "\n")
    return f"dead_letters/{dead.name}"


def _dead_letter_same_size(build: Path) -> str:
    dead = _dead(build)
    text = dead.read_text()
    assert '"stage"' in text
    dead.write_text(text.replace('"stage"', '"stagE"', 1))
    return f"dead_letters/{dead.name}"


def _extra_dead_letters(build: Path) -> str:
    shutil.copy(_dead(build), build / "dead_letters" / "more.jsonl")
    return "dead_letters/more.jsonl"


def _stats_changed(build: Path) -> str:
    stats = json.loads((build / "stats.json").read_text())
    stats["totals"]["written"] += 1
    (build / "stats.json").write_text(json.dumps(stats, indent=2))
    return "stats.json"


def _unknown_file(build: Path) -> str:
    (build / "notes.txt").write_text("mine")
    return "notes.txt"


def _image_changed(build: Path) -> str:
    image = _image(build)
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    return f"images/{image.name}"


def _image_deleted(build: Path) -> str:
    image = _image(build)
    image.unlink()
    return f"images/{image.name}"


# (tamper, caught by `verify --quick`, caught by show's check, caught by publish)
TAMPERS: dict[str, tuple[Callable[[Path], str], bool, bool, bool]] = {
    "shard with 5 fewer rows": (_fewer_rows, True, True, True),
    "shard same size, other bytes": (_same_size_shard, False, False, False),
    "shard missing": (_missing_shard, True, True, True),
    "extra shard": (_extra_shard, True, True, True),
    "dead letter added": (_dead_letter_added, True, True, True),
    "dead letter same size": (_dead_letter_same_size, False, False, False),
    "extra dead-letter file": (_extra_dead_letters, True, True, True),
    "stats.json changed": (_stats_changed, True, True, True),
    "unknown top-level file": (_unknown_file, True, True, True),
    "image bytes changed": (_image_changed, False, False, False),
    "image deleted": (_image_deleted, True, False, True),
}


def test_an_intact_build_verifies(sample_build, capsys):
    assert main(["verify", str(sample_build)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"OK: the build {sample_build} matches its _BUILD.json")
    assert "sha256 of every file" in out and "(bytes hashed)" in out and len(out.splitlines()) == 1
    assert main(["verify", str(sample_build), "--quick"]) == 0
    assert "--quick: nothing hashed" in capsys.readouterr().out


@pytest.mark.parametrize("how", list(TAMPERS))
def test_verify_catches_a_tampered_build(sample_build, tmp_path, capsys, how):
    tamper, quick, show, publish = TAMPERS[how]
    build = tmp_path / "build"
    shutil.copytree(sample_build, build)
    named = tamper(build)

    assert main(["verify", str(build)]) == 2
    err = capsys.readouterr().err
    assert f"{build} does not match its _BUILD.json" in err
    assert f"\n  {named}: " in err, err
    assert "--overwrite" in err

    assert main(["verify", str(build), "--quick"]) == (2 if quick else 0)
    captured = capsys.readouterr()
    assert (named in captured.err) == quick

    if show:
        assert main(["show", str(build), "--summary"]) == 2
        err = capsys.readouterr().err
        assert named in err and f"`mmloom verify {build}`" in err and "--overwrite" in err
    if publish:
        release = tmp_path / "release"
        argv = ["publish", "--build", str(build), "--output", str(release), "--version", "1.0.0"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert named in err and f"`mmloom verify {build}`" in err
        assert not release.exists()


def test_the_sample_fewer_rows_message_gives_both_counts(sample_build, tmp_path, capsys):
    build = tmp_path / "build"
    shutil.copytree(sample_build, build)
    rows = pq.ParquetFile(_shard(build)).metadata.num_rows
    named = _fewer_rows(build)
    assert main(["show", str(build), "--summary"]) == 2
    assert f"{named}: " in (err := capsys.readouterr().err)
    assert f"{rows - 5} rows (the manifest says {rows})" in err


def test_verify_refuses_what_is_no_build(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    assert main(["verify", str(tmp_path / "plain")]) == 2
    assert "neither a build" in capsys.readouterr().err


def test_verify_names_an_unfinished_build(sample_build, tmp_path, capsys):
    build = tmp_path / "build"
    shutil.copytree(sample_build, build)
    (build / "_BUILD.json").unlink()
    assert main(["verify", str(build)]) == 2
    assert "no _BUILD.json" in capsys.readouterr().err


def test_a_manifest_path_outside_the_build_is_never_opened(sample_build, tmp_path, capsys):
    build = tmp_path / "build"
    shutil.copytree(sample_build, build)
    manifest = json.loads((build / "_BUILD.json").read_text())
    manifest["dead_letters"]["files"][0]["path"] = "../outside.jsonl"
    (build / "_BUILD.json").write_text(json.dumps(manifest))
    assert main(["verify", str(build)]) == 2
    assert "a path outside the build ('../outside.jsonl')" in capsys.readouterr().err


def test_a_shard_damaged_in_place_is_an_error_not_a_traceback(sample_build, tmp_path, capsys):
    """One byte flipped inside the data pages: same size and footer, so show's quick check
    lets it through, but reading it stops with one message; full verify names the shard."""
    build = tmp_path / "build"
    shutil.copytree(sample_build, build)
    shard = _shard(build)
    original = shard.read_bytes()
    for pos in range(len(original) // 4, len(original) // 2, 997):  # the first that breaks
        data = bytearray(original)
        data[pos] ^= 0xFF
        shard.write_bytes(bytes(data))
        try:
            list(iter_parquet_rows(str(shard)))
        except DamagedFileError:
            break
    else:
        pytest.fail("no flipped byte made the shard unreadable")
    assert main(["show", str(build), "--jsonl"]) == 2
    err = capsys.readouterr().err
    assert "the file is damaged" in err and shard.name in err and "Traceback" not in err
    assert main(["verify", str(build)]) == 2
    assert f"records/{shard.name}: same size, other bytes" in capsys.readouterr().err
