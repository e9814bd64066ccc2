"""`mmloom verify` on releases, and the quick check `mmloom show` runs before reading one: a
release with a shard rewritten, a file changed, missing or added is refused (issue 19)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.publish.release import verify

pytestmark = pytest.mark.slow


def _shard(release: Path) -> Path:
    return sorted((release / "data").glob("*.parquet"))[0]


def _fewer_rows(release: Path) -> str:
    """The hostile review's case: a data shard rewritten with 5 fewer rows (same schema and
    metadata, so it still loads)."""
    shard = _shard(release)
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 5), shard, row_group_size=100)
    return f"data/{shard.name}"


def _card_appended(release: Path) -> str:
    card = release / "README.md"
    card.write_text(card.read_text() + "\nThis data is licensed CC0.\n")
    return "README.md"


def _card_same_size(release: Path) -> str:
    card = release / "README.md"
    text = card.read_text()
    assert "license: other" in text
    card.write_text(text.replace("license: other", "license: cc0-1", 1))
    return "README.md"


def _report_changed(release: Path) -> str:
    report = release / "report" / "index.html"
    report.write_text(report.read_text().replace("<body", "<body onload='x()'", 1))
    return "report/index.html"


def _file_missing(release: Path) -> str:
    (release / "dropped.jsonl").unlink()
    return "dropped.jsonl"


def _extra_file(release: Path) -> str:
    (release / "data" / "test-extra.parquet").write_bytes(_shard(release).read_bytes())
    return "data/test-extra.parquet"


def _mmie_same_size(release: Path) -> str:
    path = release / "mmie" / "data.json"
    items = json.loads(path.read_text())
    text = path.read_text()
    answer = next(s["text"] for item in items for s in item["answer"] if s.get("text"))
    changed = answer[:-1] + ("x" if answer[-1] != "x" else "y")
    assert json.dumps(answer)[1:-1] in text
    path.write_text(text.replace(json.dumps(answer)[1:-1], json.dumps(changed)[1:-1], 1))
    return "mmie/data.json"


def _mmie_item_removed(release: Path) -> str:
    path = release / "mmie" / "data.json"
    items = json.loads(path.read_text())
    path.write_text(json.dumps(items[1:], ensure_ascii=False, indent=2, sort_keys=True))
    return "mmie/data.json"


# (tamper, caught by the quick check of `verify --quick` and `show`)
TAMPERS: dict[str, tuple[Callable[[Path], str], bool]] = {
    "data shard with 5 fewer rows": (_fewer_rows, True),
    "card appended": (_card_appended, True),
    "card same size": (_card_same_size, False),
    "report changed": (_report_changed, True),
    "file missing": (_file_missing, True),
    "extra file": (_extra_file, True),
    "mmie/data.json same size": (_mmie_same_size, False),
    "mmie/data.json item removed": (_mmie_item_removed, True),
}


def test_an_intact_release_verifies(release, capsys):
    assert verify(str(release)) == []
    assert main(["verify", str(release)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"OK: the release {release} matches its manifest.json")
    assert "sha256 of every file" in out and len(out.splitlines()) == 1
    assert main(["verify", str(release), "--quick"]) == 0
    assert "--quick: nothing hashed" in capsys.readouterr().out


@pytest.mark.parametrize("how", list(TAMPERS))
def test_verify_catches_a_tampered_release(release, tmp_path, capsys, how):
    tamper, quick = TAMPERS[how]
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    named = tamper(copy)

    assert main(["verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy} does not match its manifest.json" in err
    assert f"\n  {named}: " in err, err
    assert "mmloom publish" in err
    assert any(p.startswith(f"{named}: ") for p in verify(str(copy)))

    assert main(["verify", str(copy), "--quick"]) == (2 if quick else 0)
    assert (named in capsys.readouterr().err) == quick
    if quick:
        assert main(["show", str(copy), "--summary"]) == 2
        err = capsys.readouterr().err
        assert named in err and f"`mmloom verify {copy}`" in err


def test_show_summary_refuses_a_shard_with_fewer_rows(release, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    rows = pq.ParquetFile(_shard(copy)).metadata.num_rows
    named = _fewer_rows(copy)
    assert main(["show", str(copy), "--summary"]) == 2
    captured = capsys.readouterr()
    assert "records in the release" not in captured.out  # nothing was read
    assert f"{named}: " in captured.err
    assert f"{rows - 5} rows (the manifest says {rows})" in captured.err
    manifest = json.loads((copy / "manifest.json").read_text())
    image = next(p for p in manifest["files"] if p.startswith("mmie/images/"))
    assert main(["show", str(copy), "--image", "images/" + image.split("/")[-1]]) == 2
    assert named in capsys.readouterr().err


def test_mmie_item_count_is_checked_in_full(release, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    items = len(json.loads((copy / "mmie" / "data.json").read_text()))
    _mmie_item_removed(copy)
    assert main(["verify", str(copy)]) == 2
    assert f"{items - 1} rows (the manifest says {items})" in capsys.readouterr().err


def test_many_problems_are_listed_first_then_counted(release, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    for i in range(25):
        (copy / f"stray-{i:02d}.txt").write_text("x")
    assert main(["verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "(25 problems)" in err and "stray-19.txt" in err and "stray-20.txt" not in err
    assert "and 5 more" in err
    assert main(["show", str(copy), "--summary"]) == 2
    err = capsys.readouterr().err
    assert "stray-04.txt" in err and "stray-05.txt" not in err and "and 20 more" in err


def test_a_release_without_its_data_or_manifest_is_refused(release, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    shutil.rmtree(copy / "data")
    assert main(["show", str(copy), "--summary"]) == 2
    assert "data/test-00000-of-00001.parquet: missing" in capsys.readouterr().err
    (copy / "manifest.json").write_text("{not json")
    assert main(["verify", str(copy)]) == 2
    assert "manifest.json: not valid JSON" in capsys.readouterr().err
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = {"bytes": 1, "rows": None, "sha256": "0" * 64}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(copy)]) == 2
    assert "a path outside the release ('../../etc/passwd')" in capsys.readouterr().err


def test_show_of_an_intact_release_hashes_nothing(release, capsysbinary, monkeypatch):
    """The check before show reads sizes, the file list and Parquet footers only: with every
    hashing helper broken, --summary and --image still work."""
    import schemas.buildio
    import schemas.verify

    def no_hashing(path):
        raise AssertionError(f"show hashed {path}")

    monkeypatch.setattr(schemas.buildio, "sha256_size", no_hashing)
    monkeypatch.setattr(schemas.verify, "sha256_size", no_hashing)
    assert main(["show", str(release), "--summary"]) == 0
    assert b"records in the release" in capsysbinary.readouterr().out
    assert main(["show", str(release), "--limit", "1", "--jsonl"]) == 0
    record = json.loads(capsysbinary.readouterr().out.decode())
    path = next(s["image"] for s in record["question"] if s["image"])
    assert main(["show", str(release), "--image", path]) == 0
    data = capsysbinary.readouterr().out
    assert hashlib.sha256(data).hexdigest() == path.split("/")[1].split(".")[0]
