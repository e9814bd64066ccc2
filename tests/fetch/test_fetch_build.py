"""A full fetch of all five sources from loopback servers, then a build of what was fetched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fetch.conftest import (
    checksums_dir,
    fetch_env,
    put_manual,
    run_fetch,
)


def has_auth(request) -> bool:
    return "authorization" in {k.lower() for k in request.headers}


@pytest.mark.slow
def test_fetch_all_then_build(tmp_path, serve, published):
    files, hub = serve
    to = tmp_path / "data"
    put_manual(to / "manual", published, "vist", "wikihow")
    sums = checksums_dir(tmp_path, published)
    env = fetch_env(files, hub, tmp_path, HF_TOKEN="hf_test_secret_token")
    args = ["all", "--to", str(to), "--checksums-dir", str(sums), "--mathvista-layout", "github"]

    result = run_fetch(env, *args)
    assert result.returncode == 0, result.stderr

    # the layouts of the source READMEs, and nothing the build does not read
    assert (to / "coco/annotations/captions_val2017.json").is_file()
    assert (to / "coco/annotations/instances_val2017.json").is_file()
    assert not (to / "coco/annotations/captions_train2017.json").exists()
    assert not (to / "coco/annotations/person_keypoints_val2017.json").exists()
    assert len(list((to / "coco/val2017").glob("*.jpg"))) == 79
    assert sorted(p.name for p in (to / "vist/sis").iterdir()) == ["test.story-in-sequence.json"]
    assert sorted(p.name for p in (to / "vist/dii").iterdir()) == [
        "test.description-in-isolation.json"
    ]
    assert len(list((to / "vist/images/test").iterdir())) == 42
    assert (to / "mathvista/data/testmini.json").is_file()
    assert (to / "mathvista/data/query.json").is_file()
    assert len(list((to / "mathvista/data/images").iterdir())) == 33  # not the extra 9999.jpg
    assert sorted(p.name for p in (to / "remi").glob("*.parquet")) == ["test.parquet"]
    assert (to / "wikihow/WikihowText_data.json").is_file()
    assert (to / "wikihow/wiki_images/train").is_dir()
    assert (to / "wikihow/wiki_images/test").is_dir()

    # only the chosen splits were requested: no train images, no ReMI train
    assert not files.requests(contains="train2017")
    assert not hub.requests(contains="train.parquet")
    # the hub files were pinned to the commit main resolved to, and recorded with it
    remi_rows = (to / "remi/checksums.tsv").read_text()
    assert (
        "hf://datasets/mehrankazemi/ReMI@5f0c2a7e9d1b3c4a6e8f0a1b2c3d4e5f60718293/test.parquet"
        in (remi_rows)
    )
    # HF_TOKEN went to the hub, not to the CDN it redirects to, and was never printed
    assert hub.requests() and all(has_auth(r) for r in hub.requests())
    assert not any(has_auth(r) for r in files.requests(contains="/cdn/"))
    assert "hf_test_secret_token" not in result.stdout + result.stderr

    config = yaml.safe_load((to / "mmloom.yaml").read_text())
    assert set(config["sources"]) == {"vist", "wikihow", "mathvista", "remi", "coco"}
    assert config["sources"]["coco"] == {"root": "coco", "split": "val"}

    # a second fetch verifies the stamps and downloads nothing
    before = len(files.requests("GET")) + len(hub.requests())
    again = run_fetch(env, *args)
    assert again.returncode == 0, again.stderr
    assert len(files.requests("GET")) + len(hub.requests()) == before
    assert len(files.requests("GET", contains="zips/val2017.zip")) == 1

    from pipelines import build

    out = tmp_path / "build"
    build.run(["--config", str(to / "mmloom.yaml"), "--output", str(out), "--no-clip"])
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["sources"]) == {"vist", "wikihow", "mathvista", "remi", "coco"}
    for name, s in stats["sources"].items():
        assert s["reconciled"], name
        assert s["read"] == s["written"] + sum(s["dropped"].values()), name
    # sample counts (docs in sample/*/SOURCE.md); VIST reads original_text by default and the
    # sample's challenge stories publish only `text`, so they are dead letters here
    assert stats["sources"]["mathvista"]["written"] == 33
    assert stats["sources"]["remi"]["written"] == 13
    assert stats["sources"]["wikihow"]["written"] == 12
    assert stats["sources"]["coco"]["written"] > 0
    assert stats["sources"]["vist"]["read"] == 10
    assert list((out / "records").glob("*.parquet"))


def test_recorded_config_paths_are_relative(tmp_path, serve, published):
    """The written config works from its own folder: it holds no absolute paths."""
    files, hub = serve
    to = tmp_path / "data"
    env = fetch_env(files, hub, tmp_path)
    sums = checksums_dir(tmp_path, published)
    result = run_fetch(env, "remi", "--to", str(to), "--checksums-dir", str(sums))
    assert result.returncode == 0, result.stderr
    text = (to / "mmloom.yaml").read_text()
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert str(tmp_path) not in body
    assert yaml.safe_load(text)["sources"] == {"remi": {"parquet": "remi/*.parquet"}}
    assert (
        Path(to / "remi/test.parquet").read_bytes()
        == published.hub[("mehrankazemi/ReMI", "test.parquet")]
    )
