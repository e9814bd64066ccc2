"""Tests for the wikiHow (VGSI) reader: parsing, mapping, restructuring, Beam, sample.

No real VGSI line is public (sample/wikihow/SOURCE.md), so the parse tests use hand-built
lines in the published format and the bundled sample, which follows the same format.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from schemas.deadletter import DEAD, STAGE_READ, dead_letter
from schemas.errors import PipelineConfigError, RecordError
from schemas.records import NULL_GT_ANSWER
from schemas.taxonomy import is_known, iter_targets, source_table
from schemas.validation import validate_record
from sources.wikihow import ReadWikiHow, parse
from tests.sources.reading import read_units
from tools import make_sample_wikihow
from tools.sample_images import make_image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample" / "wikihow"
SAMPLE_TEXT = SAMPLE / "WikihowText_data.json"
SAMPLE_IMAGES = SAMPLE / "wiki_images"

# Expected on the bundled sample (reported to the lead for configs/sample.yaml).
SAMPLE_ITEMS = 14
SAMPLE_RECORDS = 12
SAMPLE_DEAD_RESTRUCTURE = {"too_few_steps": 1, "unmapped_category": 1}


# --------------------------------------------------------------------------- factories


def make_step(file_id: str, m: int, s: int, **overrides: Any) -> dict[str, Any]:
    step = {
        "headline": f"Do step {s + 1}.",
        "description": f"Details of step {s + 1}.",
        "img": f"https://www.wikihow.com/images/{file_id}-{m}-{s}.jpg",
        "img_license": "Creative Commons",
        "step_id": f"{file_id}_{m}_{s}",
    }
    step.update(overrides)
    return step


def make_article(
    file_id: str = "123",
    n_methods: int = 1,
    n_steps: int = 3,
    hierarchy: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    article = {
        "file_id": file_id,
        "goal": "How to Test a Reader",
        "goal_description": "An introduction.",
        "category_hierarchy": hierarchy or ["Computers and Electronics", "Software", "Testing"],
        "methods": [
            {
                "name": f"Method Name {m}",
                "method_id": f"{file_id}_{m}",
                "steps": [make_step(file_id, m, s) for s in range(n_steps)],
            }
            for m in range(n_methods)
        ],
    }
    article.update(overrides)
    return article


def line(article: Any) -> bytes:
    return (json.dumps(article) + "\n").encode()


def write_images(folder: Path, step_ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for step_id in step_ids:
        (folder / f"{step_id}.png").write_bytes(make_image(step_id, 160, 160, fmt="PNG"))


def all_step_ids(article: dict[str, Any]) -> list[str]:
    return [s["step_id"] for m in article["methods"] for s in m["steps"]]


def run_lines(lines: list[bytes], lookup: dict[str, str] | None = None, images_root: str = "/imgs"):
    units = list(parse.read_lines(lines, "data.json", lookup or {}, images_root=images_root))
    items = [u for u in units if not isinstance(u, RecordError)]
    dead = [as_dead_letter(u) for u in units if isinstance(u, RecordError)]
    return items, dead


def as_dead_letter(err: RecordError) -> dict[str, Any]:
    return dead_letter(STAGE_READ, err.reason, parse.SOURCE, err.source_id, err.detail)


def item_for(article: dict[str, Any], lookup: dict[str, str] | None = None, m: int = 0):
    items, dead = run_lines([line(article)], lookup)
    assert dead == []
    return items[m]


def full_lookup(article: dict[str, Any]) -> dict[str, str]:
    return {sid: f"/imgs/{sid}.png" for sid in all_step_ids(article)}


def sample_units() -> list[dict[str, Any] | RecordError]:
    lookup = parse.image_lookup(str(SAMPLE_IMAGES))
    lines = SAMPLE_TEXT.read_bytes().splitlines(keepends=True)
    return list(parse.read_lines(lines, str(SAMPLE_TEXT), lookup, images_root=str(SAMPLE_IMAGES)))


# --------------------------------------------------------------------------- JSON Lines


def test_blank_lines_and_trailing_newline_are_not_units():
    a, b = make_article("1"), make_article("2", n_methods=2)
    lines = [b"\n", line(a), b"   \n", b"\r\n", line(b).replace(b"\n", b"\r\n"), b"\n"]
    items, dead = run_lines(lines)
    assert dead == []
    assert [i["source_id"] for i in items] == ["1_0", "2_0", "2_1"]
    assert [i["line"] for i in items] == [2, 5, 5]


def test_utf8_bom_on_first_line_is_tolerated():
    items, dead = run_lines([b"\xef\xbb\xbf" + line(make_article("7"))])
    assert dead == [] and len(items) == 1


@pytest.mark.parametrize(
    "raw",
    [b'{"file_id": "1", "goal": ', b"not json at all\n", b"\xff\xfe{}\n", b"[1, 2\n"],
)
def test_malformed_line_is_one_dead_letter(raw):
    items, dead = run_lines([line(make_article("1")), raw, line(make_article("3"))])
    assert len(items) == 2
    assert len(dead) == 1
    assert dead[0]["reason"] == "malformed_json"
    assert dead[0]["stage"] == STAGE_READ
    assert dead[0]["source_id"] == "data.json:2"
    assert "data.json line 2" in dead[0]["detail"]


@pytest.mark.parametrize("key", parse.ARTICLE_KEYS)
def test_missing_article_key_is_one_dead_letter(key):
    article = make_article("5", n_methods=3)
    del article[key]
    items, dead = run_lines([line(article)])
    assert items == []
    assert [d["reason"] for d in dead] == ["missing_key"]
    assert repr(key) in dead[0]["detail"] and "line 1" in dead[0]["detail"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"goal": 5},
        {"goal": "  "},
        {"file_id": ["1"]},
        {"file_id": True},
        {"goal_description": 3},
        {"category_hierarchy": "Health"},
        {"category_hierarchy": ["Health", 2]},
        {"methods": {"name": "x"}},
    ],
)
def test_wrongly_typed_article_is_one_bad_value(overrides):
    article = make_article("5", n_methods=2)
    article.update(overrides)
    items, dead = run_lines([line(article)])
    assert items == []
    assert [d["reason"] for d in dead] == ["bad_value"]


def test_line_that_is_not_an_object_is_bad_value():
    items, dead = run_lines([b"[1, 2, 3]\n", b'"text"\n'])
    assert items == []
    assert [(d["reason"], d["source_id"]) for d in dead] == [
        ("bad_value", "data.json:1"),
        ("bad_value", "data.json:2"),
    ]


def test_article_without_methods_is_one_no_methods_dead_letter():
    items, dead = run_lines([line(make_article("9", methods=[]))])
    assert items == []
    assert [(d["reason"], d["source_id"]) for d in dead] == [("no_methods", "9")]


def test_goal_description_may_be_null_or_absent_and_file_id_may_be_int():
    a = make_article("11", goal_description=None)
    b = make_article("12")
    del b["goal_description"]
    c = make_article("13")
    c["file_id"] = 13
    items, dead = run_lines([line(a), line(b), line(c)])
    assert dead == []
    assert [i["goal_description"] for i in items] == [None, None, "An introduction."]
    assert items[2]["file_id"] == "13" and items[2]["source_id"] == "13_0"


def test_method_level_problems_are_one_dead_letter_per_method():
    article = make_article("20", n_methods=8)
    methods = article["methods"]
    methods[1] = "not a method"  # bad_value
    del methods[2]["steps"]  # missing_key
    del methods[3]["steps"][1]["headline"]  # missing_key (step)
    methods[4]["steps"] = "steps"  # bad_value
    methods[5]["steps"][0]["step_id"] = "../../etc/passwd"  # path_escapes_root
    methods[6]["steps"][2]["headline"] = None  # bad_value
    methods[7]["name"] = 3  # bad_value
    items, dead = run_lines([line(article)])
    assert [i["source_id"] for i in items] == ["20_0"]
    assert [(d["reason"], d["source_id"]) for d in dead] == [
        ("bad_value", "20_1"),
        ("missing_key", "20_2"),
        ("missing_key", "20_3"),
        ("bad_value", "20_4"),
        ("path_escapes_root", "20_5"),
        ("bad_value", "20_6"),
        ("bad_value", "20_7"),
    ]
    assert "method 3, step 1" in dead[2]["detail"] and "'headline'" in dead[2]["detail"]
    assert len(items) + len(dead) == 8  # one unit per method


def test_unexpected_exception_becomes_one_dead_letter(monkeypatch):
    real = parse.method_item

    def flaky(article, m, **kwargs):
        if m == 1:
            raise ZeroDivisionError("boom")
        return real(article, m, **kwargs)

    monkeypatch.setattr(parse, "method_item", flaky)
    items, dead = run_lines([line(make_article("25", n_methods=3))])
    assert [i["source_id"] for i in items] == ["25_0", "25_2"]
    assert [(d["reason"], d["source_id"]) for d in dead] == [("unexpected_error", "25_1")]
    assert "ZeroDivisionError" in dead[0]["detail"]


@pytest.mark.parametrize("step_id", ["..", ".", "a/b", "a\\b", "", "x\x00y"])
def test_unsafe_step_id_is_path_escapes_root(step_id):
    article = make_article("30")
    article["methods"][0]["steps"][1]["step_id"] = step_id
    items, dead = run_lines([line(article)])
    assert items == []
    reason = "bad_value" if step_id == "" else "path_escapes_root"
    assert [d["reason"] for d in dead] == [reason]


def test_missing_method_id_is_derived_from_file_id_and_position():
    article = make_article("40", n_methods=3)
    del article["methods"][0]["method_id"]
    article["methods"][1]["method_id"] = None
    items, dead = run_lines([line(article)])
    assert dead == []
    assert [(i["method_id"], i["method_id_derived"]) for i in items] == [
        ("40_0", True),
        ("40_1", True),
        ("40_2", False),
    ]


def test_item_is_a_plain_dict_with_the_contract_keys():
    article = make_article("50")
    item = item_for(article, full_lookup(article))
    assert item["source"] == "wikihow"
    assert item["source_id"] == "50_0" and isinstance(item["source_id"], str)
    assert item["split"] == "all" and item["source_file"] == "data.json"
    assert [s["image_uri"] for s in item["steps"]] == [f"/imgs/50_0_{s}.png" for s in range(3)]
    assert item["steps"][0]["img_license"] == "Creative Commons"


# --------------------------------------------------------------------------- images


def test_image_lookup_searches_flat_train_and_test(tmp_path):
    write_images(tmp_path, ["1_0_0", "9_9_9"])
    write_images(tmp_path / "train", ["1_0_1", "9_9_9"])
    write_images(tmp_path / "test", ["1_0_2"])
    lookup = parse.image_lookup(str(tmp_path))
    assert lookup["1_0_0"] == str(tmp_path / "1_0_0.png")
    assert lookup["1_0_1"] == str(tmp_path / "train" / "1_0_1.png")
    assert lookup["1_0_2"] == str(tmp_path / "test" / "1_0_2.png")
    assert lookup["9_9_9"] == str(tmp_path / "9_9_9.png")  # the flat folder wins
    assert "train" not in lookup and "test" not in lookup


def test_image_lookup_without_subfolders(tmp_path):
    write_images(tmp_path, ["2_0_0"])
    assert parse.image_lookup(str(tmp_path)) == {"2_0_0": str(tmp_path / "2_0_0.png")}
    assert parse.image_lookup(str(tmp_path / "absent")) == {}


# --------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("hierarchy", "expected"),
    [
        (["Education and Communications", "Writing", "Letters"], ("Education", "Writing", False)),
        (["Finance and Business", "Taxes"], ("Finance", "Taxes", False)),
        (["Health", "Emotional Health", "Stress"], ("Health", "Emotional Health", False)),
        (["Computers and Electronics", "Internet"], ("EECS", "Internet", False)),
        (["Arts and Entertainment", "Music", "Guitar"], ("Art", "Music", False)),
        (["Sports and Fitness", "Team Sports", "Soccer"], ("Sports", "Team Sports", False)),
        (["Philosophy and Religion", "Religion", "Buddhism"], ("Philosophy", "Religion", False)),
        (["Work World", "Job Search"], ("Finance", "Careers and Workplace", True)),
        (["health", "mental health"], ("Health", "Mental Health", False)),
        (["Arts & Entertainment", "Movies"], ("Art", "Movies and Television", False)),
        ([" Sports  and Fitness ", "Personal Fitness"], ("Sports", "Fitness", False)),
        (["Health", "Something New"], ("Health", "General Health", True)),
        (["Computers and Electronics"], ("EECS", "General EECS", True)),
        (["Philosophy and Religion", "Occult"], ("Philosophy", "General Philosophy", True)),
    ],
)
def test_map_category(hierarchy, expected):
    assert parse.map_category(hierarchy) == expected
    assert is_known(expected[0], expected[1])


@pytest.mark.parametrize(
    "hierarchy", [["Home and Garden", "Housekeeping"], ["Food and Entertaining"], []]
)
def test_unmapped_category_raises(hierarchy):
    with pytest.raises(RecordError) as err:
        parse.map_category(hierarchy, "f line 3")
    assert err.value.reason == "unmapped_category"
    assert "f line 3" in err.value.detail


def test_fields_table_targets_are_in_the_taxonomy_and_pbl_fields():
    table = source_table("wikihow")
    pairs = list(iter_targets(table))
    assert len(pairs) > 90
    assert all(is_known(f, s) for f, s in pairs)
    assert {f for f, _ in pairs} == {
        "Education",
        "Finance",
        "Health",
        "EECS",
        "Art",
        "Sports",
        "Philosophy",
    }
    tops = {name: entry["field"] for name, entry in table["top_level"].items()}
    assert tops == {
        "Education and Communications": "Education",
        "Finance and Business": "Finance",
        "Health": "Health",
        "Computers and Electronics": "EECS",
        "Arts and Entertainment": "Art",
        "Sports and Fitness": "Sports",
        "Philosophy and Religion": "Philosophy",
        "Work World": "Finance",
    }
    for name, entry in table["top_level"].items():
        assert all(t["field"] == entry["field"] for t in entry["second_level"].values()), name


# --------------------------------------------------------------------------- restructure


def test_restructure_builds_question_and_answer():
    article = make_article("60", n_methods=2, n_steps=4)
    item = item_for(article, full_lookup(article), m=1)
    rec = parse.restructure(item, {})
    assert rec["id"] == "PBL_wikihow_60_1"
    assert (rec["category"], rec["field"], rec["subfield"]) == ("PBL", "EECS", "Software")
    assert [s["text"] for s in rec["question"]] == [
        "How to Test a Reader? Method 2: Method Name 1",
        "Step 1: Do step 1. Details of step 1.",
    ]
    assert [s["image"] for s in rec["question"]] == [None, "@0"]
    assert [s["text"] for s in rec["answer"]] == [
        f"Step {i}: Do step {i}. Details of step {i}." for i in (2, 3, 4)
    ]
    assert [s["image"] for s in rec["answer"]] == ["@1", "@2", "@3"]
    assert rec["gt_answer"] == NULL_GT_ANSWER and rec["model"] == "gt"
    assert [im["uri"] for im in rec["images"]] == [f"/imgs/60_1_{s}.png" for s in range(4)]
    assert {im["license"] for im in rec["images"]} == {"Creative Commons"}
    assert rec["provenance"] == {
        "source": "wikihow",
        "split": "all",
        "source_id": "60_1",
        "license": parse.LICENSE,
        "source_file": "data.json",
    }
    meta = rec["source_metadata"]
    assert meta["file_id"] == "60" and meta["method_id"] == "60_1"
    assert meta["category_hierarchy"] == ["Computers and Electronics", "Software", "Testing"]
    assert meta["goal_description"] == "An introduction."
    assert meta["step_image_urls"][0] == "https://www.wikihow.com/images/60-1-0.jpg"
    assert meta["missing_step_images"] == [] and meta["subfield_fallback"] is False


def test_restructure_prompt_goal_question_mark_and_split():
    article = make_article("61", goal="How to Do It?")
    item = item_for(article, full_lookup(article))
    item["split"] = "train"
    rec = parse.restructure(item, {"prompt": "Continue the tutorial with text and images."})
    assert [s["text"] for s in rec["question"][:2]] == [
        "Continue the tutorial with text and images.",
        "How to Do It? Method 1: Method Name 0",
    ]
    assert rec["provenance"]["split"] == "train"
    assert parse.restructure(item, {"prompt": None})["question"][0]["text"].startswith("How to")


def test_restructure_caps_answer_steps():
    article = make_article("62", n_steps=9)
    item = item_for(article, full_lookup(article))
    rec = parse.restructure(item, {})  # default cap 3: 1 + 3 = 4 images, as in MMIE Figure 1
    assert len(rec["answer"]) == 3 and rec["answer"][-1]["text"].startswith("Step 4:")
    assert len(rec["images"]) == 4
    assert rec["source_metadata"]["answer_truncated"] is True
    assert rec["source_metadata"]["n_steps"] == 9
    rec2 = parse.restructure(item, {"max_answer_steps": 2})
    assert [s["text"][:6] for s in rec2["answer"]] == ["Step 2", "Step 3"]
    assert len(rec2["images"]) == 3


@pytest.mark.parametrize("n_steps", [0, 1])
def test_too_few_steps(n_steps):
    article = make_article("63", n_steps=n_steps)
    item = item_for(article, full_lookup(article))
    with pytest.raises(RecordError) as err:
        parse.restructure(item, {})
    assert err.value.reason == "too_few_steps"


def test_missing_step_one_image_is_image_missing():
    article = make_article("64")
    lookup = full_lookup(article)
    del lookup["64_0_0"]
    with pytest.raises(RecordError) as err:
        parse.restructure(item_for(article, lookup), {})
    assert err.value.reason == "image_missing" and "64_0_0" in err.value.detail


def test_missing_later_image_keeps_the_text():
    article = make_article("65", n_steps=4)
    lookup = full_lookup(article)
    del lookup["65_0_2"]
    rec = parse.restructure(item_for(article, lookup), {})
    assert rec["answer"][1] == {"text": "Step 3: Do step 3. Details of step 3.", "image": None}
    assert [s["image"] for s in rec["answer"]] == ["@1", None, "@2"]
    assert rec["source_metadata"]["missing_step_images"] == ["65_0_2"]
    assert len(rec["images"]) == 3


def test_raw_text_degenerate_headline_and_null_description_are_kept():
    article = make_article("66", n_steps=3)
    steps = article["methods"][0]["steps"]
    steps[1]["headline"] = "."
    steps[1]["description"] = "Café au lait, trailing space "
    steps[2]["description"] = None
    rec = parse.restructure(item_for(article, full_lookup(article)), {})
    assert rec["answer"][0]["text"] == "Step 2: . Café au lait, trailing space "
    assert rec["answer"][1]["text"] == "Step 3: Do step 3."


def test_unmapped_category_in_restructure():
    article = make_article("67", hierarchy=["Home and Garden", "Housekeeping"])
    with pytest.raises(RecordError) as err:
        parse.restructure(item_for(article, full_lookup(article)), {})
    assert err.value.reason == "unmapped_category"
    assert "line 1, method 0" in err.value.detail


def test_restructured_record_validates_after_load_images(tmp_path):
    article = make_article("68", n_steps=4, hierarchy=["Health", "Unknown Second Level"])
    write_images(tmp_path / "train", all_step_ids(article)[:2])
    write_images(tmp_path / "test", all_step_ids(article)[3:])
    lookup = parse.image_lookup(str(tmp_path))
    items, dead = run_lines([line(article)], lookup, images_root=str(tmp_path))
    assert dead == []
    rec = load_images(parse.restructure(items[0], {"prompt": "Go on."}))
    assert validate_record(rec) == []
    assert (rec["field"], rec["subfield"]) == ("Health", "General Health")
    assert rec["source_metadata"]["subfield_fallback"] is True
    assert rec["source_metadata"]["missing_step_images"] == ["68_0_2"]


# --------------------------------------------------------------------------- options


def test_check_options(tmp_path):
    good = {"text": str(SAMPLE_TEXT), "images": str(SAMPLE_IMAGES)}
    parse.check_options(good)
    parse.check_options({**good, "max_answer_steps": 3})
    for bad in (
        {"images": str(SAMPLE_IMAGES)},
        {**good, "text": str(tmp_path / "absent.json")},
        {**good, "images": str(tmp_path / "absent")},
        {**good, "max_answer_steps": 0},
        {**good, "max_answer_steps": "5"},
    ):
        with pytest.raises(PipelineConfigError):
            parse.check_options(bad)


# --------------------------------------------------------------------------- Beam


def _counter(result, name: str) -> int:
    metrics = result.metrics().query(MetricsFilter().with_namespace("ReadWikiHow").with_name(name))
    return sum(c.committed for c in metrics["counters"])


def test_read_wikihow_pipeline_bad_input_reconciles(tmp_path):
    good = make_article("70", n_methods=2)
    no_id = make_article("71")
    del no_id["methods"][0]["method_id"]
    escape = make_article("72")
    escape["methods"][0]["steps"][0]["step_id"] = "../72_0_0"
    missing = make_article("73")
    del missing["category_hierarchy"]
    text = tmp_path / "WikihowText_data.json"
    text.write_bytes(
        line(good)
        + b"\n"
        + b"{broken\n"
        + line(no_id)
        + line(escape)
        + line(missing)
        + line(make_article("74", methods=[]))
        + line(make_article("75", goal=7))
    )
    write_images(tmp_path / "images" / "test", all_step_ids(good))
    options = {"text": str(text), "images": str(tmp_path / "images")}
    read_dead = [
        ("read", "malformed_json", "WikihowText_data.json:3"),
        ("read", "path_escapes_root", "72_0"),
        ("read", "missing_key", "73"),
        ("read", "no_methods", "74"),
        ("read", "bad_value", "75"),
    ]
    # the reader's per-file step: the items it reads
    items, dead = read_units(ReadWikiHow(options))
    img = str(tmp_path / "images" / "test" / "{}.png")
    assert [(i["source_id"], i["steps"][0]["image_uri"]) for i in items] == [
        ("70_0", img.format("70_0_0")),
        ("70_1", img.format("70_1_0")),
        ("71_0", None),
    ]
    assert sorted((d["stage"], d["reason"], d["source_id"]) for d in dead) == sorted(read_dead)
    # in a pipeline the reader restructures them
    p = TestPipeline()
    out = p | "ReadWikiHow" >> ReadWikiHow(options)
    ids = out.drafts | "DraftIds" >> beam.Map(lambda d: d["provenance"]["source_id"])
    reasons = out[DEAD] | "Reasons" >> beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"]))
    assert_that(ids, equal_to(["70_0", "70_1"]), label="CheckDrafts")
    restructured = [("restructure", "image_missing", "71_0")]
    assert_that(reasons, equal_to([*read_dead, *restructured]), label="CheckDead")
    result = p.run()
    result.wait_until_finish()
    assert _counter(result, "items") == 3
    assert _counter(result, "dropped_malformed_json") == 1
    assert _counter(result, "dropped_path_escapes_root") == 1


# --------------------------------------------------------------------------- sample


def test_every_good_sample_item_becomes_a_valid_record():
    items = sample_units()
    assert len(items) == SAMPLE_ITEMS and not any(isinstance(u, RecordError) for u in items)
    records, dead = [], Counter()
    for item in items:
        try:
            draft = parse.restructure(item, {"max_answer_steps": 5, "prompt": None})
        except RecordError as exc:
            dead[exc.reason] += 1
            continue
        rec = load_images(draft)
        assert validate_record(rec) == [], rec["id"]
        records.append(rec)
    assert len(records) == SAMPLE_RECORDS
    assert dict(dead) == SAMPLE_DEAD_RESTRUCTURE
    assert len(records) + sum(dead.values()) == len(items)
    assert len({r["id"] for r in records}) == len(records)
    fields = Counter(r["field"] for r in records)
    assert fields == {
        "Education": 3,
        "Finance": 2,
        "Health": 2,
        "EECS": 2,
        "Art": 1,
        "Sports": 1,
        "Philosophy": 1,
    }
    by_id = {r["id"]: r for r in records}
    # the quirks the sample was built to show
    assert by_id["PBL_wikihow_90000102_0"]["source_metadata"]["goal_description"] is None
    assert by_id["PBL_wikihow_90000102_0"]["source_metadata"]["missing_step_images"] == [
        "90000102_0_2"
    ]
    assert by_id["PBL_wikihow_90000104_0"]["source_metadata"]["method_id_derived"] is True
    assert by_id["PBL_wikihow_90000105_0"]["answer"][1]["text"].startswith("Step 3: . ")
    assert by_id["PBL_wikihow_90000106_0"]["source_metadata"]["answer_truncated"] is True
    assert by_id["PBL_wikihow_90000108_0"]["subfield"] == "Careers and Workplace"
    assert by_id["PBL_wikihow_90000110_0"]["subfield"] == "General Education"
    assert "café" in by_id["PBL_wikihow_90000110_0"]["answer"][1]["text"]
    assert min(min(im["width"], im["height"]) for r in records for im in r["images"]) >= 150


def test_sample_images_are_split_over_flat_train_and_test():
    folders = Counter(p.parent.name for p in SAMPLE_IMAGES.rglob("*.png"))
    assert set(folders) == {"wiki_images", "train", "test"}
    assert all(p.suffix == ".png" for p in SAMPLE_IMAGES.rglob("*") if p.is_file())


def test_sample_matches_its_generator(tmp_path):
    out = make_sample_wikihow.main(tmp_path / "wikihow")
    generated = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(SAMPLE): p.read_bytes()
        for p in SAMPLE.rglob("*")
        if p.is_file() and p.name != "SOURCE.md"
    }
    assert generated.keys() == committed.keys()
    assert all(generated[k] == committed[k] for k in generated)
    assert sum(len(b) for b in committed.values()) < 1_500_000
