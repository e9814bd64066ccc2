"""Issue 19, paths: stats.json records where the build's config and sources were (absolute,
so ``publish`` gives the same manifest from any folder and never checksums a decoy), and
names that are not UTF-8 are refused (the config's folder) or dead letters (a data file)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.publish.cli import main as publish_main
from schemas.buildio import MANIFEST_FILE, write_manifest
from tests.conftest import REPO

SAMPLE_REMI = REPO / "sample" / "remi"
CONFIG = "version: 1\nname: paths\nsources:\n  remi:\n    parquet: remi/*.parquet\n"


def _corpus(folder: Path) -> Path:
    """The sample's ReMI files under ``folder/remi`` and a config naming them by a relative
    glob; returns the config."""
    (folder / "remi").mkdir(parents=True)
    for name in ("test.parquet", "train.parquet"):
        shutil.copy(SAMPLE_REMI / name, folder / "remi" / name)
    config = folder / "cfg.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def _build(argv_config: str, out: Path, capsys) -> None:
    argv = ["build", "--config", argv_config, "--output", str(out), "--no-clip"]
    assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.slow
def test_publish_from_two_folders_gives_identical_manifests(tmp_path, monkeypatch, capsys):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    config = _corpus(here)
    monkeypatch.chdir(here)
    _build("cfg.yaml", tmp_path / "build", capsys)  # the config named relative to the cwd
    # elsewhere: a decoy with the same relative paths as the build's config and data
    decoy = _corpus(elsewhere)
    table = pq.read_table(SAMPLE_REMI / "test.parquet").slice(0, 1)
    pq.write_table(table, elsewhere / "remi" / "test.parquet")
    assert decoy.read_text("utf-8") == CONFIG

    manifests = []
    for cwd, name in ((here, "rel-here"), (elsewhere, "rel-elsewhere")):
        monkeypatch.chdir(cwd)
        out = tmp_path / name
        argv = ["--build", str(tmp_path / "build"), "--output", str(out), "--version", "1.0.0"]
        assert publish_main(argv) == 0, capsys.readouterr().err
        manifests.append((out / "manifest.json").read_bytes())
        for path in out.rglob("*"):  # no machine path in a release
            if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".html"):
                assert str(tmp_path) not in path.read_text("utf-8"), path
    assert manifests[0] == manifests[1]
    sources = json.loads(manifests[0])["source_files"]
    real = {  # named relative to the source's root, the configured glob's folder
        n: hashlib.sha256((here / "remi" / n).read_bytes()).hexdigest()
        for n in ("test.parquet", "train.parquet")
    }
    assert {s["path"]: (s["source"], s["status"], s["sha256"]) for s in sources} == {
        path: ("remi", "ok", digest) for path, digest in real.items()
    }
    stats = json.loads((tmp_path / "build" / "stats.json").read_text("utf-8"))
    assert stats["config"] == str(config)  # absolute, whatever was typed
    assert stats["source_paths"] == {"remi": {"parquet": str(here / "remi" / "*.parquet")}}


@pytest.mark.slow
def test_publish_never_resolves_an_old_relative_config_path(tmp_path, monkeypatch, capsys):
    """A build whose stats.json names its config by a relative path (before this change):
    its source files are "not checked", never taken from the folder publish runs in."""
    here = tmp_path / "here"
    _corpus(here)
    _build(str(here / "cfg.yaml"), tmp_path / "build", capsys)
    stats_path = tmp_path / "build" / "stats.json"
    stats = json.loads(stats_path.read_text("utf-8"))
    stats["config"] = "cfg.yaml"
    del stats["source_paths"]
    stats_path.write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", "utf-8")
    (tmp_path / "build" / MANIFEST_FILE).unlink()  # it lists stats.json's checksum
    write_manifest(str(tmp_path / "build"))
    decoy_dir = tmp_path / "decoy"
    _corpus(decoy_dir)
    monkeypatch.chdir(decoy_dir)
    out = tmp_path / "rel"
    argv = ["--build", str(tmp_path / "build"), "--output", str(out), "--version", "1.0.0"]
    assert publish_main(argv) == 0, capsys.readouterr().err
    sources = json.loads((out / "manifest.json").read_text("utf-8"))["source_files"]
    assert sources and all(s["status"].startswith("not checked") for s in sources)
    assert all("sha256" not in s for s in sources)


def test_config_in_a_folder_whose_name_is_not_utf8_is_refused(tmp_path, capsys):
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/cfg\xff"))
    config = _corpus(folder)
    out = tmp_path / "out"
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "is not UTF-8" in err and "cfg\\xff" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_data_file_whose_name_is_not_utf8_is_a_dead_letter(tmp_path, capsys):
    config = _corpus(tmp_path)
    odd = Path(os.fsdecode(bytes(tmp_path / "remi") + b"/odd\xff.parquet"))
    shutil.copy(SAMPLE_REMI / "train.parquet", odd)
    out = tmp_path / "out"
    _build(str(config), out, capsys)
    stats = json.loads((out / "stats.json").read_text("utf-8"))
    remi = stats["sources"]["remi"]
    rows = sum(
        pq.read_metadata(SAMPLE_REMI / n).num_rows for n in ("test.parquet", "train.parquet")
    )
    assert remi["read"] == rows + 1
    assert remi["dropped"].get("file_name_not_utf8") == 1
    assert remi["read"] == remi["written"] + sum(remi["dropped"].values())
    dead = [
        json.loads(line)
        for path in (out / "dead_letters").glob("*.jsonl")
        for line in path.read_text("utf-8").splitlines()
    ]
    bad = [d for d in dead if d["reason"] == "file_name_not_utf8"]
    assert [d["source_id"] for d in bad] == ["odd\\xff.parquet"]
