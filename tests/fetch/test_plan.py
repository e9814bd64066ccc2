"""Fetch plans through the CLI (issue 22, item 4): ``mmloom fetch list`` and ``--dry-run``
print every file with its size, licence, origin and target, and the totals, and fetch
nothing; ``fetch all`` gets every scriptable file first, then lists the files to get by
hand with their exact paths (exit 3), and writes the config for the complete sources; a file
put by hand goes to one place, ``DIR/manual/<source>/<file>``, whatever the source."""

from __future__ import annotations

import json

import yaml

from pipelines.cli import main
from pipelines.fetch.limits import human
from pipelines.fetch.sources import specs
from sources import get_source
from tests.fetch.conftest import (
    COCO_ANN,
    COCO_VAL,
    checksums_dir,
    fetch_coco,
    fetch_env,
    gets,
    put_manual,
    run_fetch,
)


def default_plans() -> dict:
    return {
        name: spec.plan(spec.default_splits, {o.key: o.default for o in spec.options})
        for name, spec in specs().items()
    }


def listed(capsys, *argv: str) -> dict:
    assert main(["fetch", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_names_every_file_with_size_licence_origin_target_and_totals(capsys):
    plan = listed(capsys, "list")
    plans = default_plans()
    # every file of every registered source's default plan, in plan order
    assert [(f["source"], f["file"]) for f in plan["files"]] == [
        (n, j.filename) for n, p in plans.items() for j in p.jobs
    ]
    for f in plan["files"]:
        assert f["licence"] == get_source(f["source"]).card.licence["short"]
        assert f["laid_out"] == f"DIR/{f['source']}"
        assert f["status"] is None  # no fetch folder: nothing to look at
        if f["by_hand"]:
            assert f["target"] == f"DIR/manual/{f['source']}/{f['file']}"
            assert f["get_from"]
        else:
            assert f["target"].startswith(f"DIR/downloads/{f['source']}/")
            assert f["url"].startswith(("http://", "https://", "hf://"))
    by_file = {f["file"]: f for f in plan["files"]}
    # exact sizes come from the checksums rows, approximate ones from the plan's notes
    assert by_file["val2017.zip"]["size"] == 815585330 and by_file["val2017.zip"]["size_exact"]
    assert by_file["test_images.tar.gz"]["by_hand"]
    assert by_file["test_images.tar.gz"]["size"] == 35 * 10**9
    assert not by_file["test_images.tar.gz"]["size_exact"]
    assert by_file["wiki_images.zip"]["size"] is None
    assert by_file["testmini-00000-of-00001-725687bf7a18d64b.parquet"]["target"] == (
        "DIR/downloads/mathvista/hub/data/testmini-00000-of-00001-725687bf7a18d64b.parquet"
    )
    # the totals add up the rows
    totals = plan["totals"]
    for kind, rows in (
        ("scriptable", [f for f in plan["files"] if not f["by_hand"]]),
        ("by_hand", [f for f in plan["files"] if f["by_hand"]]),
        ("all", plan["files"]),
    ):
        assert totals[kind]["files"] == len(rows)
        assert totals[kind]["bytes"] == sum(f["size"] or 0 for f in rows)
        assert totals[kind]["unknown_size"] == sum(f["size"] is None for f in rows)
    assert totals["by_hand"]["files"] == 3 and totals["by_hand"]["unknown_size"] == 2
    assert totals["scriptable"]["bytes"] > 10**9  # COCO val alone is 1.07 GB


def test_list_text_and_its_choice_of_sources_and_splits(capsys):
    assert main(["fetch", "list"]) == 0
    text = capsys.readouterr().out
    assert "test_images.tar.gz  ~35.0 GB  by hand" in text
    assert "put it at    DIR/manual/vist/test_images.tar.gz" in text
    assert "from http://images.cocodataset.org/zips/val2017.zip" in text
    assert "licence: CC BY-NC-SA 3.0" in text  # wikiHow's, from its card
    assert "Downloaded by script: 6 files, ~1.8 GB" in text
    assert "Downloaded by hand:   3 files, ~35.0 GB + 2 of unknown size" in text
    # the sources that need nothing by hand, and the command that fetches just those
    assert "`mmloom fetch mathvista remi coco --to DIR`" in text

    plan = listed(capsys, "list", "coco", "vist", "--split", "coco=train", "--split", "vist=train")
    assert [s["source"] for s in plan["sources"]] == ["coco", "vist"]
    files = [f["file"] for f in plan["files"]]
    assert "train2017.zip" in files and "val2017.zip" not in files
    assert sum(f["by_hand"] for f in plan["files"]) == 13  # train_split.0-12
    assert main(["fetch", "list", "nosuch"]) == 2
    assert "unknown source 'nosuch'" in capsys.readouterr().err


def test_dry_run_shows_what_is_in_place_and_fetches_nothing(tmp_path, serve, published, capsys):
    files, hub = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    argv = ["all", "--to", str(to), "--checksums-dir", str(sums), "--mirror", files.url]
    plan = listed(capsys, *argv, "--dry-run")
    assert {f["status"] for f in plan["files"] if f["by_hand"]} == {"missing"}
    assert {f["status"] for f in plan["files"] if not f["by_hand"]} == {"to fetch"}
    assert plan["files"][0]["target"].startswith(str(to))
    assert not files.requests() and not hub.requests()
    assert not to.exists()  # nothing written either

    put_manual(to / "manual", published, "wikihow")
    assert fetch_coco(files, to, sums) == 0
    capsys.readouterr()
    status = {f["file"]: f["status"] for f in listed(capsys, *argv, "--dry-run")["files"]}
    assert status["WikihowText_data.json"] == status["wiki_images.zip"] == "in place"
    assert status["test_images.tar.gz"] == "missing"
    assert status["val2017.zip"] == status["annotations_trainval2017.zip"] == "fetched"
    assert status["test.parquet"] == "to fetch"

    assert main(["fetch", *argv, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"Fetch plan into {to}" in text
    size = human(len(published.http[COCO_VAL]))  # the row of --checksums-dir gives it
    assert f"val2017.zip  {size}  download  [fetched]" in text
    assert f"put it at    {to / 'manual/vist/test_images.tar.gz'}" in text


def test_fetch_needs_to_and_json_needs_a_plan(tmp_path, capsys):
    assert main(["fetch", "coco"]) == 2
    assert "--to DIR is missing" in capsys.readouterr().err
    assert main(["fetch", "--to", str(tmp_path)]) == 2
    assert "name the sources to fetch (or all)" in capsys.readouterr().err
    # a dry run without sources is the plan of all of them, as `fetch list`
    assert listed(capsys, "--dry-run") == listed(capsys, "list")
    assert main(["fetch", "coco", "--to", str(tmp_path), "--json"]) == 2
    assert "--json prints the plan" in capsys.readouterr().err


def test_fetch_all_gets_every_scriptable_file_then_lists_the_hand_ones(tmp_path, serve, published):
    files, hub = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    env = fetch_env(files, hub, tmp_path)
    args = ["all", "--to", str(to), "--checksums-dir", str(sums), "--mathvista-layout", "github"]

    result = run_fetch(env, *args)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    # every scriptable file is fetched and laid out, VIST's annotations included
    assert len(list((to / "coco/val2017").glob("*.jpg"))) == 79
    assert (to / "mathvista/data/testmini.json").is_file()
    assert (to / "remi/test.parquet").is_file()
    assert (to / "vist/sis/test.story-in-sequence.json").is_file()
    # then each hand file with the exact path to put it at, all under DIR/manual/<source>/
    for source, name in (
        ("vist", "test_images.tar.gz"),
        ("wikihow", "WikihowText_data.json"),
        ("wikihow", "wiki_images.zip"),
    ):
        assert f"-> put it at {to / 'manual' / source / name}" in result.stdout
    assert "`mmloom fetch mathvista remi coco --to" in result.stdout
    # the config names the complete sources, and only those
    config = yaml.safe_load((to / "mmloom.yaml").read_text())
    assert set(config["sources"]) == {"mathvista", "remi", "coco"}

    put_manual(to / "manual", published, "vist", "wikihow")
    before = len(files.requests("GET")) + len(hub.requests())
    again = run_fetch(env, *args)
    assert again.returncode == 0, again.stderr
    assert "by hand" not in again.stdout
    config = yaml.safe_load((to / "mmloom.yaml").read_text())
    assert set(config["sources"]) == {"vist", "wikihow", "mathvista", "remi", "coco"}
    assert len(files.requests("GET")) + len(hub.requests()) == before  # nothing fetched twice
    assert len(list((to / "vist/images/test").iterdir())) == 42


def test_a_failed_download_is_put_by_hand_in_the_one_manual_folder(
    tmp_path, serve, published, capsys
):
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    files.put(COCO_VAL, published.http[COCO_VAL], fault=("status", 403))
    assert fetch_coco(files, to, sums) == 2
    hand = to / "manual/coco/val2017.zip"
    assert f"put it at {hand}" in capsys.readouterr().err
    assert len(gets(files, COCO_VAL)) == 1

    hand.parent.mkdir(parents=True)
    hand.write_bytes(published.http[COCO_VAL])
    assert fetch_coco(files, to, sums, "--delete-archives") == 0
    assert len(gets(files, COCO_VAL)) == 1  # taken from the manual folder, verified
    assert len(list((to / "coco/val2017").glob("*.jpg"))) == 79
    assert hand.is_file()  # a hand-placed file is never deleted, even with --delete-archives


def test_a_file_left_in_downloads_by_an_earlier_version_still_counts(tmp_path, serve, published):
    """Earlier versions told a user whose download failed to put the file in
    ``DIR/downloads/<source>/``: a file there is still verified and used, not fetched again."""
    files, _ = serve
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    old = to / "downloads/coco/annotations_trainval2017.zip"
    old.parent.mkdir(parents=True)
    old.write_bytes(published.http[COCO_ANN])
    assert fetch_coco(files, to, sums) == 0
    assert not gets(files, COCO_ANN)
    assert (to / "coco/annotations/captions_val2017.json").is_file()
