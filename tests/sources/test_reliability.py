"""Issue 14 in the sources layer: optional side files, deep JSON, dead letters that name no
machine path, and record ids that never merge distinct items."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.transforms.validate import ValidateRecordsFn
from schemas.deadletter import DEAD
from schemas.records import make_id
from sources import get_source
from sources.base import MAX_ITEM_DEPTH, TOO_DEEP, nesting_depth, scrub_paths
from sources.coco import ReadCOCO
from sources.mathvista import ReadMathVista
from sources.mathvista import parse as mathvista
from sources.vist import ReadVIST
from sources.wikihow import ReadWikiHow
from tests.sources.reading import read_units

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample"
MATHVISTA = SAMPLE / "mathvista"
REAL = json.loads((MATHVISTA / "testmini.json").read_text("utf-8"))
DEEP = "[" * 200_000  # json.loads: RecursionError, not JSONDecodeError


# ----------------------------------------------------------------------------- helpers


def run_direct(readers: list, paths_per_reader: list[list[str]] | None = None):
    """Run readers' per-file step without Beam; each reader plays one worker (a pickled copy,
    as Beam ships it) and gets its share of the elements. Returns (items, dead letters)."""
    items, dead = [], []
    workers = [pickle.loads(pickle.dumps(r)) for r in readers]
    if paths_per_reader is None:
        paths_per_reader = [[*readers[0].files, *readers[0].side]]
    for worker, paths in zip(workers, paths_per_reader, strict=True):
        more_items, more_dead = read_units(worker, paths)
        items += more_items
        dead += more_dead
    return items, dead


def mathvista_root(tmp: Path, *, query: str | None = None, test_split: bool = False) -> Path:
    """The sample's GitHub layout, with ``query.json`` replaced by ``query`` when given and a
    second split file ``test.json`` (3 problems of split ``test``) when ``test_split``."""
    root = tmp / "mathvista"
    shutil.copytree(MATHVISTA, root)
    if query is not None:
        (root / "query.json").write_text(query, "utf-8")
    if test_split:
        extra = {}
        for n, pid in enumerate(("1", "2", "3")):
            p = copy.deepcopy(REAL[pid])
            p["pid"] = f"9000{n}"
            p["metadata"]["split"] = "test"
            extra[p["pid"]] = p
        (root / "test.json").write_text(json.dumps(extra), "utf-8")
    return root


def mv_options(root: Path, splits=("testmini",)) -> dict[str, Any]:
    return {"root": str(root), "splits": list(splits)}


# ----------------------------------------------------------------------------- side files


@pytest.mark.parametrize("test_split", [False, True], ids=["one-split-file", "two-split-files"])
def test_broken_query_json_is_one_dead_letter_and_every_problem_is_read(tmp_path, test_split):
    root = mathvista_root(tmp_path, query='{"1": "What', test_split=test_split)
    splits = ("testmini", "test") if test_split else ("testmini",)
    reader = ReadMathVista(mv_options(root, splits))
    assert [Path(p).name for p in reader.side] == ["query.json"]
    items, dead = run_direct([reader])
    assert len(items) == len(REAL) + (3 if test_split else 0)
    assert all(it["query"] is None for it in items)  # they go on without it
    assert [(d["reason"], d["source_id"]) for d in dead] == [("malformed_file", "query.json")]
    assert str(tmp_path) not in json.dumps(dead)


def test_broken_query_json_one_dead_letter_with_several_workers(tmp_path):
    """Two split files on two workers, the side file on one of them: still one dead letter."""
    root = mathvista_root(tmp_path, query="{oops", test_split=True)
    reader = ReadMathVista(mv_options(root, ("testmini", "test")))
    first, second = reader.files
    shares = [[first], [second, *reader.side]]
    items, dead = run_direct([reader, reader], shares)
    assert len(items) == len(REAL) + 3
    assert [d["source_id"] for d in dead] == ["query.json"]


def test_broken_query_json_in_a_pipeline_counts_one_unit_per_problem(tmp_path):
    root = mathvista_root(tmp_path, query="[1, 2]", test_split=True)
    with TestPipeline() as p:
        out = p | "ReadMathVista" >> ReadMathVista(mv_options(root, ("testmini", "test")))
        n = out.drafts | beam.combiners.Count.Globally()
        dead = out[DEAD] | beam.Map(lambda d: (d["reason"], d["source_id"]))
        assert_that(n, equal_to([len(REAL) + 3]), label="EveryProblem")
        assert_that(dead, equal_to([("malformed_file", "query.json")]), label="OneDeadLetter")


def test_good_query_json_still_decorates_the_problems(tmp_path):
    root = mathvista_root(tmp_path)
    items, dead = run_direct([ReadMathVista(mv_options(root))])
    assert dead == [] and all(isinstance(it["query"], str) for it in items)


VIST_OPTIONS = {
    "sis": str(SAMPLE / "vist" / "sis" / "*.story-in-sequence.json"),
    "images": str(SAMPLE / "vist" / "images"),
    "text_field": "text",
}


def test_broken_vist_dii_is_one_dead_letter_and_the_stories_go_on(tmp_path):
    dii = tmp_path / "dii"
    dii.mkdir()
    (dii / "test.description-in-isolation.json").write_text("nope", "utf-8")
    reader = ReadVIST({**VIST_OPTIONS, "dii": str(dii / "*.json")})
    items, dead = run_direct([reader])
    without = run_direct([ReadVIST(VIST_OPTIONS)])
    assert len(items) == len(without[0]) > 0
    reasons = sorted((d["reason"], d["source_id"]) for d in dead)
    assert ("malformed_dii_file", "test.description-in-isolation.json") in reasons
    assert len(dead) == len(without[1]) + 1
    assert str(tmp_path) not in json.dumps(dead)


# ----------------------------------------------------------------------------- deep JSON


def _coco_root(tmp: Path) -> Path:
    root = tmp / "coco"
    shutil.copytree(SAMPLE / "coco", root)
    return root


def _deep_cases(tmp: Path):
    """(reader, expected (reason, source_id) of the deep file's dead letters) per JSON source."""
    mv = mathvista_root(tmp / "a")
    (mv / "testmini.json").write_text(DEEP, "utf-8")
    yield ReadMathVista(mv_options(mv)), [("malformed_file", "testmini.json")]

    mq = mathvista_root(tmp / "b", query=DEEP)
    yield ReadMathVista(mv_options(mq)), [("malformed_file", "query.json")]

    sis = tmp / "vist" / "sis"
    sis.mkdir(parents=True)
    (sis / "test.story-in-sequence.json").write_text(DEEP, "utf-8")
    options = {**VIST_OPTIONS, "sis": str(sis / "*.json")}
    yield ReadVIST(options), [("malformed_file", "test.story-in-sequence.json")]

    dii = tmp / "vist" / "dii"
    dii.mkdir(parents=True)
    (dii / "test.description-in-isolation.json").write_text(DEEP, "utf-8")
    yield (
        ReadVIST({**VIST_OPTIONS, "dii": str(dii / "*.json")}),
        [("malformed_dii_file", "test.description-in-isolation.json")],
    )

    wh = tmp / "wikihow"
    shutil.copytree(SAMPLE / "wikihow", wh)
    (wh / "WikihowText_data.json").write_text(DEEP + "\n", "utf-8")
    text = str(wh / "WikihowText_data.json")
    yield (
        ReadWikiHow({"text": text, "images": str(wh / "wiki_images")}),
        [("malformed_json", "WikihowText_data.json:1")],
    )

    cc = _coco_root(tmp / "c")
    (cc / "annotations" / "captions_val2017.json").write_text(DEEP, "utf-8")
    yield (
        ReadCOCO({"root": str(cc), "split": "val"}),
        [("bad_json", "annotations/captions_val2017.json")],
    )


def test_deep_json_is_the_malformed_reason_of_every_json_source(tmp_path):
    for reader, expected in _deep_cases(tmp_path):
        _, dead = run_direct([reader])
        got = [(d["reason"], d["source_id"]) for d in dead]
        for pair in expected:
            assert pair in got, (reader.source, got)
        assert "unexpected_error" not in {d["reason"] for d in dead}, (reader.source, dead)
        assert str(tmp_path) not in json.dumps(dead)


def test_deep_coco_instances_file_dead_letters_each_image(tmp_path):
    cc = _coco_root(tmp_path)
    (cc / "annotations" / "instances_val2017.json").write_text(DEEP, "utf-8")
    items, dead = run_direct([ReadCOCO({"root": str(cc), "split": "val"})])
    assert items == [] and dead
    assert {d["reason"] for d in dead} == {"bad_instances_file"}
    assert "RecursionError" in dead[0]["detail"]


def test_deeply_nested_value_in_a_valid_problem_is_a_dead_letter(tmp_path):
    """Nested 600 deep: json.loads takes it, but pickling and validation would recurse."""
    root = mathvista_root(tmp_path)
    text = json.dumps(REAL)
    deep = "[" * 600 + "]" * 600
    text = text.replace('"metadata": {', f'"deep": {deep}, "metadata": {{', 1)
    (root / "testmini.json").write_text(text, "utf-8")
    first = next(iter(REAL))
    items, dead = run_direct([ReadMathVista(mv_options(root))])
    assert [(d["reason"], d["source_id"]) for d in dead] == [(TOO_DEEP, first)]
    assert len(items) == len(REAL) - 1


def test_nesting_depth_needs_no_recursion():
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    assert nesting_depth(value) == MAX_ITEM_DEPTH + 1
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3 and nesting_depth("x") == 0


def _deep(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = {"x": value}
    return value


def test_restructure_and_validation_survive_a_deep_value(tmp_path, draft_factory):
    items, _ = run_direct([ReadMathVista(mv_options(mathvista_root(tmp_path)))])
    item = dict(items[0], problem={**items[0]["problem"], "metadata": _deep(5000)})
    reader = ReadMathVista(mv_options(tmp_path / "mathvista"))
    out = reader.restructure_item(item)  # a draft or a dead letter, never an exception
    assert isinstance(out, dict | beam.pvalue.TaggedOutput)

    record = draft_factory()
    record["source_metadata"] = {"deep": _deep(5000)}  # the factory deep-copies: set it after
    (out,) = list(ValidateRecordsFn().process(record))
    assert isinstance(out, beam.pvalue.TaggedOutput)
    assert out.value["reason"] == "schema_invalid"


# ----------------------------------------------------------------------------- paths in details


def test_scrub_paths_cuts_the_configured_roots():
    roots = ["/home/me/data/mathvista", "/srv/x/remi/*.parquet"]
    text = "/home/me/data/mathvista/testmini.json and /srv/x/remi/a.parquet; /home/me/data/y"
    assert scrub_paths(text, roots) == "testmini.json and a.parquet; y"
    assert scrub_paths("leaves /home/me/data/mathvista", roots) == "leaves mathvista"


def test_read_and_restructure_details_name_no_machine_path(tmp_path):
    """The same bad inputs in two folders give the same dead letters, with no path in them."""
    letters = []
    for where in ("one", "two/deeper"):
        root = mathvista_root(tmp_path / where, query="{")
        problems = json.loads((root / "testmini.json").read_text("utf-8"))
        first = next(iter(problems))
        problems[first]["answer_type"] = "complex"  # restructure: unknown_answer_type
        (root / "testmini.json").write_text(json.dumps(problems), "utf-8")
        (root / "test.json").write_text('{"1": ', "utf-8")  # read: malformed_file
        options = mv_options(root, ("testmini", "test"))
        reader = ReadMathVista(options)
        reader.setup()
        outs = [o for path in [*reader.files, *reader.side] for o in reader.draft_file(path)]
        dead = [o.value for o in outs if isinstance(o, beam.pvalue.TaggedOutput)]
        text = json.dumps(sorted(dead, key=json.dumps), sort_keys=True)
        assert str(tmp_path) not in text
        letters.append(text)
    assert letters[0] == letters[1]
    assert "unknown_answer_type" in letters[0] and "test.json" in letters[0]


# ----------------------------------------------------------------------------- ids


def test_make_id_keeps_real_ids_and_separates_sanitised_ones():
    assert make_id("MSR", "mathvista", "1") == "MSR_mathvista_1"
    assert make_id("SA", "vist", "test", "45530") == "SA_vist_test_45530"
    assert make_id("PBL", "wikihow", "10000798_0") == "PBL_wikihow_10000798_0"
    assert make_id("IF", "coco", "val", "397133") == "IF_coco_val_397133"
    assert make_id("MSR", "remi", "test", 17) == "MSR_remi_test_17"
    pairs = [
        (("MSR", "mathvista", "A1"), ("MSR", "mathvista", "a1")),
        (("MSR", "remi", "Foo Bar", 3), ("MSR", "remi", "foo-bar", 3)),
        (("MSR", "remi", "test_1", 5), ("MSR", "remi", "test", 1, 5)),
        (("MSR", "mathvista", "a b"), ("MSR", "mathvista", "a-b")),
        (("MSR", "mathvista", "a--b"), ("MSR", "mathvista", "a-b")),
    ]
    for one, other in pairs:
        assert make_id(*one) != make_id(*other), (one, other)
        assert make_id(*one) == make_id(*one)  # deterministic: the same item, the same id
    for parts in [p for pair in pairs for p in pair]:
        rest = make_id(*parts).split("_", 1)[1]
        # MMIE's router looks for these upper-case tokens: only the category may carry one
        assert rest == rest.lower()
        assert not any(tok in rest for tok in ("SA", "PBL", "MSR", "IF"))


def _mv_problem(pid: str, like: str) -> dict[str, Any]:
    p = copy.deepcopy(REAL[like])
    p["pid"] = pid
    return p


def test_case_only_mathvista_pids_are_two_records(tmp_path):
    root = mathvista_root(tmp_path)
    problems = {"A1": _mv_problem("A1", "1"), "a1": _mv_problem("a1", "2")}
    (root / "testmini.json").write_text(json.dumps(problems), "utf-8")
    items, dead = run_direct([ReadMathVista(mv_options(root))])
    assert dead == []
    ids = {mathvista.restructure(it, {})["id"] for it in items}
    assert len(ids) == 2 and "MSR_mathvista_a1" in ids


def test_colliding_remi_split_names_are_distinct_records(tmp_path):
    remi = get_source("remi")
    table = pq.read_table(SAMPLE / "remi" / "test.parquet")
    pq.write_table(table.slice(0, 2), tmp_path / "Foo Bar.parquet")
    pq.write_table(table.slice(2, 2), tmp_path / "foo-bar.parquet")
    reader = remi.reader({"parquet": str(tmp_path / "*.parquet")})
    items, dead = run_direct([reader])
    assert dead == [] and len(items) == 4
    ids = [remi.restructure(it, {})["id"] for it in items]
    assert len(set(ids)) == 4
    assert "MSR_remi_foo-bar_0" in ids


# ----------------------------------------------------------------------------- whole builds


def _corpus(base: Path) -> Path:
    """A tiny corpus with broken files, case-only pids and colliding ReMI split names; returns
    its config (relative paths, so the corpus can sit in any folder)."""
    root = mathvista_root(base, query='{"A1": ')  # broken side file
    problems = {
        "A1": _mv_problem("A1", "1"),
        "a1": _mv_problem("a1", "2"),
        "3": _mv_problem("3", "3"),
        "4": {**_mv_problem("4", "4"), "answer": None},  # read: no_gold_label
        "8": {**_mv_problem("8", "8"), "answer_type": "complex"},  # restructure dead letter
    }
    (root / "testmini.json").write_text(json.dumps(problems), "utf-8")
    (root / "test.json").write_text('{"1": {', "utf-8")  # read: malformed_file
    remi = base / "remi"
    remi.mkdir()
    table = pq.read_table(SAMPLE / "remi" / "test.parquet")
    pq.write_table(table.slice(0, 2), remi / "Foo Bar.parquet")
    pq.write_table(table.slice(2, 2), remi / "foo-bar.parquet")
    (remi / "junk.parquet").write_bytes(b"not parquet")  # read: malformed_file
    config = base / "tiny.yaml"
    config.write_text(
        "version: 1\nname: tiny\nsources:\n"
        "  mathvista:\n    root: mathvista\n    splits: [testmini, test]\n"
        "  remi:\n    parquet: remi/*.parquet\n",
        "utf-8",
    )
    return config


@pytest.mark.slow
def test_two_builds_in_two_folders_write_identical_dead_letters(tmp_path, capsys):
    from pipelines.cli import main

    outputs = []
    for where in ("first", "second/elsewhere"):
        base = tmp_path / where
        base.mkdir(parents=True)
        config = _corpus(base)
        out = base / "out"
        assert main(["build", "--config", str(config), "--output", str(out), "--no-clip"]) == 0
        outputs.append((base, out))
    capsys.readouterr()

    dumps = []
    for base, out in outputs:
        stats = json.loads((out / "stats.json").read_text("utf-8"))
        # stats.json's "config" is where the build's config lies: publish opens it (the
        # config's clip/dedupe blocks, the source checksums), so it stays a real path
        assert stats.pop("config") == str(base / "tiny.yaml")
        # so are the sources' paths as the build resolved them (issue 19: publish finds the
        # files the build read from any folder)
        assert stats.pop("source_paths") == {
            "mathvista": {"root": str(base / "mathvista")},
            "remi": {"parquet": str(base / "remi" / "*.parquet")},
        }
        letters = {p.name: p.read_bytes() for p in sorted((out / "dead_letters").glob("*"))}
        assert letters
        for text in [json.dumps(stats), *(b.decode("utf-8") for b in letters.values())]:
            assert str(tmp_path) not in text and str(base) not in text
        assert stats["reconciled"] is True
        for name, src in stats["sources"].items():
            assert src["reconciled"] is True, name
            assert src["read"] == src["written"] + sum(src["dropped"].values()), name
        mv, remi = stats["sources"]["mathvista"], stats["sources"]["remi"]
        # 5 problems + query.json + test.json; A1 and a1 both written, nothing is duplicate_id
        assert mv["read"] == 7 and mv["written"] == 3
        assert "duplicate_id" not in mv["dropped"] and "duplicate_id" not in remi["dropped"]
        assert remi["written"] + remi["dropped"].get("image_tag_without_image", 0) <= 4
        assert remi["read"] == 5  # 4 rows of two colliding split names + the junk file
        dead = [
            json.loads(line) for blob in letters.values() for line in blob.decode().splitlines()
        ]
        pairs = {(d["source"], d["reason"], d["source_id"]) for d in dead}
        assert ("mathvista", "malformed_file", "query.json") in pairs
        assert ("mathvista", "malformed_file", "test.json") in pairs
        assert ("remi", "malformed_file", "junk.parquet") in pairs
        dumps.append(letters)
    assert dumps[0] == dumps[1]
