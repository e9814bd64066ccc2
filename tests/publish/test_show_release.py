"""`mmloom show` reads a release as it reads a build: records, counts, one image."""

from __future__ import annotations

import hashlib
import json

from pipelines.cli import main
from pipelines.publish.cli import main as publish_main
from schemas.buildio import read_records


def test_show_reads_a_release(release, sample_build, capsys):
    assert main(["show", str(release), "--summary"]) == 0
    out = capsys.readouterr().out
    assert f"records in the release {release}" in out
    assert "release 0.1.0:" in out

    assert main(["show", str(release), "--jsonl"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    built = {r["id"]: r for r in read_records(str(sample_build))}
    assert {r["id"] for r in shown} <= set(built)
    record = shown[0]
    # segments name their images by path, as in the build; no bytes are printed
    paths = [s["image"] for s in record["question"] + record["answer"] if s["image"]]
    assert paths and all(p.startswith("images/") for p in paths)
    assert [s["image"] for s in record["question"]] == [
        s["image"] for s in built[record["id"]]["question"]
    ]

    assert main(["show", str(release), "--id", record["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == record["id"]  # one object


def test_show_dead_letters_of_a_release_are_its_dropped_lines(sample_build, tmp_path, capsys):
    """On a release, ``show --dead-letters`` prints ``dropped.jsonl``; ``--reason`` filters
    it, ``--source`` is refused (its lines name no source)."""
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"SA": {"*": 1}}))
    release = tmp_path / "release"
    argv = ["--build", str(sample_build), "--output", str(release), "--version", "0.1.0"]
    assert publish_main([*argv, "--targets", str(targets)]) == 0
    capsys.readouterr()
    dropped = [json.loads(x) for x in (release / "dropped.jsonl").read_text().splitlines()]
    assert dropped and {d["reason"] for d in dropped} == {"not_selected"}

    assert main(["show", str(release), "--dead-letters"]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == dropped
    assert main(["show", str(release), "--dead-letters", "--reason", "not_selected"]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == dropped
    assert main(["show", str(release), "--dead-letters", "--reason", "harmful_veto"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"not_selected {len(dropped)}" in captured.err
    assert main(["show", str(release), "--dead-letters", "--source", "vist"]) == 2
    assert "names no source" in capsys.readouterr().err


def test_show_writes_one_image_of_a_release(release, capsysbinary):
    assert main(["show", str(release), "--limit", "1", "--jsonl"]) == 0
    record = json.loads(capsysbinary.readouterr().out.decode())
    path = next(s["image"] for s in record["question"] if s["image"])
    assert main(["show", str(release), "--image", path]) == 0
    data = capsysbinary.readouterr().out
    assert hashlib.sha256(data).hexdigest() == path.split("/")[1].split(".")[0]
