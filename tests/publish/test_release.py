"""`mmloom publish` on the sample build: datasets loading, checksums, reproducibility, atomicity."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from datasets import DatasetInfo, load_dataset
from PIL import Image

from pipelines.publish import release as release_mod
from pipelines.publish.cli import main as publish_main
from pipelines.publish.release import verify
from pipelines.publish.shards import FEATURES
from schemas.buildio import read_records

pytestmark = pytest.mark.slow


def _load(data_dir: Path, cache: Path):
    return load_dataset("parquet", data_dir=str(data_dir), cache_dir=str(cache))


def test_every_split_loads_with_pil_images_and_declared_features(release, sample_build, tmp_path):
    ds = _load(release / "data", tmp_path / "cache")
    assert list(ds) == ["test"]
    test = ds["test"]
    assert test.features == FEATURES
    build = {r["id"]: r for r in read_records(str(sample_build))}
    assert sorted(test["id"]) == sorted(build) == test["id"]  # every record, sorted by id
    n_images = 0
    for row in test:
        record = build[row["id"]]
        for key in ("question", "answer"):
            assert len(row[key]) == len(record[key])
            for got, want in zip(row[key], record[key]):
                assert got["text"] == want["text"]
                if want["image"] is None:
                    assert got["image"] is None
                else:
                    assert isinstance(got["image"], Image.Image)
                    meta = next(im for im in record["images"] if im["path"] == want["image"])
                    assert got["image"].size == (meta["width"], meta["height"])
                    n_images += 1
    assert n_images == sum(
        1 for r in build.values() for k in ("question", "answer") for s in r[k] if s["image"]
    )


def test_manifest_checksums_verify_and_catch_tampering(release, sample_build, tmp_path):
    manifest = json.loads((release / "manifest.json").read_text())
    assert verify(str(release)) == []
    stats = json.loads((sample_build / "stats.json").read_text())
    assert manifest["release_version"] == "0.1.0"
    assert manifest["config_sha256"] == stats["config_sha256"]
    assert (
        manifest["files"]["data/test-00000-of-00001.parquet"]["rows"] == stats["totals"]["written"]
    )
    # the sample's source files still exist, so every one is checksummed
    sources = manifest["source_files"]
    assert sources and all(s["status"] == "ok" and len(s["sha256"]) == 64 for s in sources)
    assert sum(s["records"] for s in sources) == stats["totals"]["written"]
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(release, copy)
    card = copy / "README.md"
    card.write_text(card.read_text() + " ")
    (copy / "extra.txt").write_text("x")
    problems = verify(str(copy))
    assert any(p.startswith("README.md:") for p in problems)
    assert any(p.startswith("extra.txt:") for p in problems)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_second_publish_gives_identical_bytes(release, sample_build, tmp_path):
    again = tmp_path / "again"
    argv = ["--build", str(sample_build), "--output", str(again), "--version", "0.1.0"]
    assert publish_main(argv) == 0
    first, second = _files(release), _files(again)
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


def test_existing_release_needs_force(release, sample_build, capsys):
    before = _files(release)
    argv = ["--build", str(sample_build), "--output", str(release), "--version", "0.2.0"]
    assert publish_main(argv) == 2
    assert "already exists (release 0.1.0)" in capsys.readouterr().err
    assert _files(release) == before


def test_force_replaces_and_bad_version_is_refused(sample_build, tmp_path, capsys):
    out = tmp_path / "rel"
    base = ["--build", str(sample_build), "--output", str(out)]
    assert publish_main([*base, "--version", "1.0"]) == 2
    assert "X.Y.Z" in capsys.readouterr().err
    assert not out.exists()
    assert publish_main([*base, "--version", "1.0.0"]) == 0
    assert publish_main([*base, "--version", "1.0.1", "--force"]) == 0
    assert json.loads((out / "manifest.json").read_text())["release_version"] == "1.0.1"
    assert sorted(os.listdir(tmp_path)) == ["rel"]  # no temporary folders left


def test_failure_midway_leaves_no_partial_release(sample_build, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full while drawing plots")

    monkeypatch.setattr(release_mod.report, "write_report", broken)
    out = tmp_path / "rel"
    opts = release_mod.PublishOptions(build=str(sample_build), output=str(out), version="1.0.0")
    with pytest.raises(RuntimeError):
        release_mod.publish(opts)
    assert os.listdir(tmp_path) == []


def test_killed_publish_leaves_no_partial_release_and_is_cleaned_up(sample_build, tmp_path):
    out = tmp_path / "rel"
    code = (
        "import os, signal\n"
        "from pipelines.publish import release as r\n"
        "def die(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.report.write_report = die\n"
        f"r.publish(r.PublishOptions(build={str(sample_build)!r}, output={str(out)!r}, "
        "version='1.0.0'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert proc.returncode == -9
    assert not out.exists()
    # the killed run's lock file stays (harmless; the next holder deletes it): issue 19
    leftovers = sorted(set(os.listdir(tmp_path)) - {".rel.lock"})
    assert len(leftovers) == 1 and leftovers[0].startswith(".rel.publish-")
    opts = release_mod.PublishOptions(build=str(sample_build), output=str(out), version="1.0.0")
    release_mod.publish(opts)
    assert os.listdir(tmp_path) == ["rel"]


def _unescape(cell: str) -> str:
    import html

    return html.unescape(re.sub(r"\\(.)", r"\1", cell.strip()))


def _table(card: str, heading: str) -> list[list[str]]:
    section = card.split(heading + "\n", 1)[1]
    rows = []
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append([_unescape(c) for c in cells])
        elif started:
            break
    return rows[2:]  # header and rule


def test_card_counts_equal_the_data(release, tmp_path):
    text = (release / "README.md").read_text()
    rows = _load(release / "data", tmp_path / "cache")["test"].remove_columns(
        ["question", "answer", "gt_answer"]
    )
    cats = Counter(rows["category"])
    fields = Counter(zip(rows["category"], rows["field"]))
    subs = Counter(zip(rows["category"], rows["field"], rows["subfield"]))
    formats = Counter(zip(rows["category"], rows["question_format"]))

    per_cat = _table(text, "### Per category")
    assert {r[0]: int(r[2]) for r in per_cat if r[0] != "total"} == dict(cats)
    assert next(r for r in per_cat if r[0] == "total")[2] == str(len(rows))
    assert {(r[0], r[1]): int(r[2]) for r in _table(text, "### Per field")} == dict(fields)
    assert {(r[0], r[1], r[2]): int(r[3]) for r in _table(text, "### Per subfield")} == dict(subs)
    fmt = _table(text, "### Question format")
    for cat, mc, oe, total in fmt:
        if cat == "total":
            assert int(mc) + int(oe) == int(total) == len(rows)
        else:
            assert (int(mc), int(oe)) == (
                formats[(cat, "multiple_choice")],
                formats[(cat, "open_ended")],
            )
            assert int(total) == cats[cat]
    header = yaml.safe_load(text.split("---\n")[1])
    info = header["dataset_info"]
    assert info["splits"] == [
        {"name": "test", "num_bytes": info["dataset_size"], "num_examples": len(rows)}
    ]
    assert DatasetInfo._from_yaml_dict({"features": info["features"]}).features == FEATURES
    assert header["configs"][0]["data_files"] == [{"split": "test", "path": "data/test-*"}]
    n_images = sum(rows["n_images_question"])
    assert f"Images per question: **{round(n_images / len(rows), 2)}**" in text
    assert re.search(r"Mean question length: \*\*[\d.]+ words\*\*", text)
    for needle in (
        "lin2014coco",
        "lu2024mathvista",
        "kazemi2024remi",
        "huang-etal-2016-visual",
        "yang2021visual",
        "xia2025mmie",
        "qian2025miabench",
        "pretraining",
    ):
        assert needle in text
    assert "Not annotated" in text
    clip = [sc["clip"] for sc in rows["scores"]]
    scored = [c for c in clip if c["scored"]]
    if scored:  # the card names the model and counts what the data holds
        models = {c["model"] for c in scored}
        assert len(models) == 1
        assert f"{len(scored)} of {len(rows)} records scored with {models.pop()}" in text
    else:
        assert "Not scored" in text
