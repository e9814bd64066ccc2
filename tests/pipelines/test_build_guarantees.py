"""Issue 14: a build is complete or it does not exist; no single value fails the job; clean
errors for config and output problems; JSON output is always strict JSON."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines import build
from pipelines.cli import main
from pipelines.publish.cli import main as publish_main
from pipelines.transforms.io import WriteRecords, dead_letter_json
from schemas import output, swap
from schemas.buildio import (
    IncompleteBuildError,
    read_records,
    require_complete,
    write_manifest,
)
from schemas.deadletter import DEAD, dead_letter
from schemas.errors import PipelineConfigError, RecordError
from schemas.parquet import NON_FINITE_NOTE, checked_row, from_row
from schemas.store import ImageStore
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.pipelines.tinybuild import tiny_row, write_tiny_build


def _strict(line: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(line, parse_constant=refuse)


def _record(tmp_path: Path, **overrides) -> dict:
    record = from_row(tiny_row(0, ImageStore(str(tmp_path))))
    record.update(overrides)
    return record


# --------------------------------------------------------------- 1. writer isolation


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"precision": 1e308}, "value_out_of_range"),  # MathVista's 1e308 (issue 14, item 1)
        ({"precision": 2**70}, "value_out_of_range"),
        ({"precision": math.nan}, "non_finite_value"),
        ({"answer_value": math.inf}, "non_finite_value"),
        ({"id": "MSR_tiny_\ud800"}, "invalid_utf8"),
        ({"category": 5}, "unwritable_value"),
    ],
)
def test_values_the_columns_cannot_hold_are_record_errors(tmp_path, overrides, reason):
    with pytest.raises(RecordError) as err:
        checked_row(_record(tmp_path, **overrides))
    assert err.value.reason == reason


def test_non_finite_source_metadata_becomes_null_with_a_note(tmp_path):
    record = _record(tmp_path, source_metadata={"a": math.nan, "b": [1.0, -math.inf], "c": 2})
    row = checked_row(record)
    meta = _strict(row["source_metadata"])
    assert meta == {"a": None, "b": [1.0, None], "c": 2, NON_FINITE_NOTE: ["/a", "/b/1"]}


def test_write_records_turns_a_bad_value_into_a_dead_letter(tmp_path):
    good = _record(tmp_path)
    bad = _record(tmp_path, id="MSR_tiny_test_9", precision=1e308)  # source_id "0" too
    out = tmp_path / "build"
    with TestPipeline() as p:
        written = p | beam.Create([good, bad]) | "WriteRecords" >> WriteRecords(str(out))
        dead = written[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"]))
        from apache_beam.testing.util import assert_that, equal_to

        assert_that(dead, equal_to([("write_records", "value_out_of_range", "0")]))
    (shard,) = (out / "records").glob("*.parquet")
    assert [r["id"] for r in pq.read_table(shard).to_pylist()] == [good["id"]]


def test_dead_letters_are_strict_json_whatever_they_hold():
    line = dead_letter_json({"detail": math.nan, "source_id": "x\ud800", "n": object()})
    assert _strict(line)["detail"] is None
    line.encode("utf-8")


def test_dead_letter_details_hold_no_object_address(tmp_path):
    """Pillow says ``cannot identify image file <_io.BytesIO object at 0x7f...>``: an address
    that differs every run. The dead letter keeps the message without it (issue 14, 7)."""
    from pipelines.images import load_images_checked

    junk = tmp_path / "src" / "junk.png"
    junk.parent.mkdir()
    junk.write_bytes(b"not an image at all")
    draft = json.loads(json.dumps(_record(tmp_path)))  # a finished record's shape
    draft["images"] = [{"ref": "@0", "uri": str(junk), "bytes": None, "license": None,
                        "root": str(junk.parent)}]  # fmt: skip
    draft["question"] = [{"text": "q", "image": "@0"}]
    with pytest.raises(RecordError) as err:
        load_images_checked(draft)
    letter = dead_letter("load_images", err.value.reason, "vist", "1", err.value.detail)
    assert letter["reason"] == "image_undecodable"
    assert "object at 0x" not in letter["detail"] and "<_io.BytesIO>" in letter["detail"]
    assert str(tmp_path) not in letter["detail"] and "junk.png" in letter["detail"]


# --------------------------------------------------------------- 2. complete or nothing


def test_tiny_build_is_complete_and_shows(tmp_path, capsys):
    out = write_tiny_build(tmp_path / "b")
    manifest = require_complete(str(out))
    assert manifest["records"]["rows"] == 6 and len(manifest["records"]["files"]) == 2
    assert manifest["dead_letters"]["rows"] == 1 and manifest["images_referenced"] == 6
    assert main(["show", str(out), "--jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6


def _break(out: Path, how: str) -> None:
    if how == "no manifest":
        (out / "_BUILD.json").unlink()
    elif how == "shard missing":
        (out / "records" / "records-00001-of-00002.parquet").unlink()
    elif how == "shard truncated":
        shard = out / "records" / "records-00001-of-00002.parquet"
        shard.write_bytes(shard.read_bytes()[:-100])
    elif how == "shard replaced":  # same size, other rows: the footer's row count differs
        src = out / "records" / "records-00000-of-00002.parquet"
        dst = out / "records" / "records-00001-of-00002.parquet"
        shutil.copy(src, dst)
    elif how == "extra shard":
        shutil.copy(
            out / "records" / "records-00000-of-00002.parquet",
            out / "records" / "records-extra.parquet",
        )
    elif how == "stats changed":
        (out / "stats.json").write_text("{}")
    elif how == "manifest garbage":
        (out / "_BUILD.json").write_text("{not json")


BREAKS = ["no manifest", "shard missing", "shard truncated", "extra shard", "stats changed",
          "manifest garbage"]  # fmt: skip


@pytest.mark.parametrize("how", BREAKS)
def test_show_publish_and_push_refuse_an_incomplete_build(tmp_path, capsys, monkeypatch, how):
    out = write_tiny_build(tmp_path / "b")
    _break(out, how)
    with pytest.raises(IncompleteBuildError, match="--overwrite"):
        require_complete(str(out))
    assert main(["show", str(out), "--jsonl"]) == 2
    err = capsys.readouterr().err
    assert "is not a complete build" in err or "_BUILD.json" in err
    assert "--overwrite" in err
    rel = tmp_path / "rel"
    assert publish_main(["--build", str(out), "--output", str(rel), "--version", "1.0.0"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert not rel.exists()
    annotate_cli = pytest.importorskip("annotation.annotate_cli")

    def no_server(*a, **k):
        raise AssertionError("push contacted Argilla before checking the build")

    monkeypatch.setattr(annotate_cli, "connect", no_server)
    monkeypatch.setattr(annotate_cli, "credentials", no_server)
    assert annotate_cli.main(["push", "--build", str(out), "--dataset", "x"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_same_size_other_rows_is_refused(tmp_path):
    out = write_tiny_build(tmp_path / "b", n=7)  # shards of 4 and 3 rows
    _break(out, "shard replaced")
    with pytest.raises(IncompleteBuildError):
        require_complete(str(out), verify_checksums=True)


def test_manifest_is_not_written_over_an_incomplete_shard_set(tmp_path):
    out = write_tiny_build(tmp_path / "b", manifest=False)
    (out / "records" / "records-00000-of-00002.parquet").unlink()
    with pytest.raises(IncompleteBuildError, match="not one complete set"):
        write_manifest(str(out))
    assert not (out / "_BUILD.json").exists()


def test_rerun_says_the_build_there_is_incomplete(tmp_path):
    out = write_tiny_build(tmp_path / "b", manifest=False)
    output.write_marker(str(out), output.BUILD)  # a build mmloom started there (issue 19)
    with pytest.raises(PipelineConfigError, match=r"incomplete build.*--overwrite"):
        build.prepare_output(str(out), overwrite=False)
    complete = write_tiny_build(tmp_path / "c")
    with pytest.raises(PipelineConfigError, match="already holds a complete build"):
        build.prepare_output(str(complete), overwrite=False)


def test_in_place_builds_never_delete_a_complete_one(tmp_path):
    """Where the job writes into --output itself (object stores, remote runners), --overwrite
    refuses to delete a complete build and replaces only an incomplete one."""
    complete = write_tiny_build(tmp_path / "c")
    with pytest.raises(PipelineConfigError, match="another --output"):
        build.prepare_output(str(complete), overwrite=True, staged=False)
    assert require_complete(str(complete))
    incomplete = write_tiny_build(tmp_path / "i", manifest=False)
    output.write_marker(str(incomplete), output.BUILD)  # mmloom's, so it may go (issue 19)
    assert build.prepare_output(str(incomplete), overwrite=True, staged=False) == str(incomplete)
    assert sorted(p.name for p in incomplete.iterdir()) == [output.MARKER]  # this build's


def test_a_folder_with_other_files_is_never_replaced(tmp_path):
    out = write_tiny_build(tmp_path / "b")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PipelineConfigError, match=r"notes\.txt"):
        build.prepare_output(str(out), overwrite=True)


def test_replace_dir_exchanges_or_restores_after_a_crash(tmp_path, monkeypatch):
    old, new = tmp_path / "out", tmp_path / "new"
    for d, text in ((old, "old"), (new, "new")):
        d.mkdir()
        (d / "f").write_text(text)
    swap.replace_dir(str(new), str(old), "t1")
    assert (old / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out"
    ]
    # the two-rename fallback, killed between its renames: the old folder waits aside
    new.mkdir()
    (new / "f").write_text("newer")
    monkeypatch.setattr(swap, "exchange", lambda a, b: False)
    real_rename = swap.os.rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_rename(src, dst)

    monkeypatch.setattr(swap.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        swap.replace_dir(str(new), str(old), "t2")
    monkeypatch.setattr(swap.os, "rename", real_rename)
    assert not old.exists()
    assert swap.restore_aside(str(old))
    assert (old / "f").read_text() == "new"


# --------------------------------------------------------------- 7. config and output


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _sample_text(**replace: str) -> str:
    text = SAMPLE_CONFIG.read_text().replace("../", str(REPO) + "/")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def _build_fails(capsys, *argv: str) -> str:
    assert main(["build", *argv, "--no-clip"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_config_not_utf8(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    err = _build_fails(capsys, "--config", str(path), "--output", str(tmp_path / "o"))
    assert "not UTF-8" in err


def test_config_is_a_folder(tmp_path, capsys):
    err = _build_fails(capsys, "--config", str(tmp_path), "--output", str(tmp_path / "o"))
    assert "is a folder" in err


def test_output_is_a_file(tmp_path, capsys):
    out = tmp_path / "o"
    out.write_text("x")
    err = _build_fails(capsys, "--config", str(SAMPLE_CONFIG), "--output", str(out))
    assert "is an existing file" in err
    assert out.read_text() == "x"


def test_images_option_names_a_file(tmp_path, capsys):
    a_file = REPO / "sample" / "wikihow" / "WikihowText_data.json"
    text = _sample_text(**{f"{REPO}/sample/vist/images": str(a_file)})
    path = _config(tmp_path, text)
    err = _build_fails(capsys, "--config", str(path), "--output", str(tmp_path / "o"))
    assert "sources.vist.images" in err and "a file; it must be a folder" in err


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_in_the_config(tmp_path, capsys, value):
    path = _config(tmp_path, _sample_text() + f"images:\n  max_aspect: {value}\n")
    err = _build_fails(capsys, "--config", str(path), "--output", str(tmp_path / "o"))
    assert "images.max_aspect must be a finite number" in err


# --------------------------------------------------------------- 7. strict JSON from show


def test_show_jsonl_is_strict_json_even_with_nan_in_an_old_build(tmp_path, capsys):
    out = write_tiny_build(tmp_path / "b", source_metadata='{"x": NaN, "y": Infinity}')
    assert math.isnan(next(read_records(str(out)))["source_metadata"]["x"])  # as written
    assert main(["show", str(out), "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [_strict(line)["source_metadata"] for line in lines] == [{"x": None, "y": None}] * 6
    assert main(["show", str(out)]) == 0
    assert len(_strict(capsys.readouterr().out)) == 6


# --------------------------------------------------------------- 1. one bad value, whole build


@pytest.mark.slow
def test_mathvista_precision_1e308_and_nan_metadata_do_not_fail_the_build(tmp_path, capsys):
    """Issue 14, item 1: ``precision: 1e308`` passed parsing and the schema, then overflowed
    the int64 column in WriteRecords and failed the run. Now it is one dead letter."""
    root = tmp_path / "mathvista"
    shutil.copytree(REPO / "sample" / "mathvista", root)
    problems = json.loads((root / "testmini.json").read_text())
    problems["1"]["precision"] = 1e308
    problems["2"]["metadata"] = {**problems["2"].get("metadata", {}), "ratio": math.nan}
    (root / "testmini.json").write_text(json.dumps(problems))  # writes NaN, as Python does
    config = _config(tmp_path, f"version: 1\nsources:\n  mathvista:\n    root: {root}\n")
    out = tmp_path / "out"
    assert main(["build", "--config", str(config), "--output", str(out), "--no-clip"]) == 0
    capsys.readouterr()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["reconciled"] is True
    assert stats["sources"]["mathvista"]["dropped_by_stage"]["write_records"] == {
        "value_out_of_range": 1
    }
    from schemas.buildio import read_dead_letters

    (dead,) = [d for d in read_dead_letters(str(out)) if d["stage"] == "write_records"]
    assert dead["source_id"] == "1" and "precision" in dead["detail"]
    assert require_complete(str(out))["records"]["rows"] == stats["totals"]["written"]
    assert main(["show", str(out), "--jsonl"]) == 0
    shown = [_strict(line) for line in capsys.readouterr().out.splitlines()]
    assert len(shown) == stats["totals"]["written"]
    (two,) = [r for r in shown if r["provenance"]["source_id"] == "2"]
    assert two["source_metadata"][NON_FINITE_NOTE]


def test_publish_restores_a_release_left_aside_by_a_crash(tmp_path):
    """``publish --force`` killed between the two renames of the fallback swap leaves the old
    release aside; the next publish to that place puts it back before anything else."""
    from pipelines.publish import release as release_mod
    from schemas.errors import MmloomError

    aside = tmp_path / ".rel.replaced-abc123"
    aside.mkdir()
    (aside / "manifest.json").write_text(
        '{"release_version": "0.9.0", "mmloom_version": "0.1.0", "files": {}}'
    )
    build_dir = write_tiny_build(tmp_path / "b", manifest=False)
    opts = release_mod.PublishOptions(
        build=str(build_dir), output=str(tmp_path / "rel"), version="1.0.0", force=True
    )
    with pytest.raises(MmloomError, match="not a complete build"):
        release_mod.publish(opts)
    assert json.loads((tmp_path / "rel" / "manifest.json").read_text())["release_version"] == (
        "0.9.0"
    )
    assert not aside.exists()
