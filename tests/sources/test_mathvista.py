"""MathVista reader: pure parsing on the real testmini records, both layouts, Beam, bad inputs."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from schemas.deadletter import DEAD
from schemas.errors import PipelineConfigError, RecordError
from schemas.taxonomy import is_known, iter_targets, source_table
from schemas.validation import validate_record
from sources.mathvista import ReadMathVista, parse
from tests.sources.reading import read_units
from tools.sample_images import make_image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample" / "mathvista"
REAL = json.loads((SAMPLE / "testmini.json").read_text("utf-8"))
QUERIES = json.loads((SAMPLE / "query.json").read_text("utf-8"))
TEST_META = {**REAL["2"]["metadata"], "split": "test"}

# Expected (field, subfield) per sample pid, from fields.yaml's ordered rules.
EXPECTED_FIELDS = {
    "1": ("Physics", "Scientific Figures"),
    "2": ("Mathematics", "Arithmetic"),
    "3": ("Mathematics", "Geometry"),
    "4": ("Mathematics", "Word Problems"),
    "8": ("Mathematics", "Visual Counting"),
    "10": ("Mathematics", "Logic and Puzzles"),
    "13": ("Statistics", "Charts and Plots"),
    "23": ("Mathematics", "Functions"),
    "44": ("Statistics", "Tables"),
    "84": ("Mathematics", "Geometry"),
    "86": ("Statistics", "Charts and Plots"),
    "229": ("Statistics", "Documents and Infographics"),
    "506": ("Statistics", "Charts and Plots"),
}


# ----------------------------------------------------------------------------- helpers


def root_options(root: Path | str, **extra: Any) -> dict[str, Any]:
    return {"root": str(root), "splits": ["testmini"], **extra}


def read_direct(options: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Run the reader's per-file step without Beam: (items, dead letters)."""
    return read_units(ReadMathVista(options))


def finish(item: dict[str, Any]) -> dict[str, Any]:
    return load_images(parse.restructure(item, {}))


def real_items() -> dict[str, dict[str, Any]]:
    items, dead = read_direct(root_options(SAMPLE))
    assert dead == []
    return {it["source_id"]: it for it in items}


def write_root(tmp: Path, problems: dict[str, Any], images: bool = True, **files: str) -> Path:
    """A GitHub-layout folder: testmini.json (+ other files given as name=text) + images."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "testmini.json").write_text(json.dumps(problems, ensure_ascii=False), "utf-8")
    for name, text in files.items():
        (tmp / name.replace("__", ".")).write_text(text, "utf-8")
    if images:
        (tmp / "images").mkdir(exist_ok=True)
        for pid, p in problems.items():
            if isinstance(p, dict) and isinstance(p.get("image"), str) and ".." not in p["image"]:
                (tmp / p["image"]).write_bytes(make_image(f"t{pid}", 160, 160))
    return tmp


def real(key: str, /, **overrides: Any) -> dict[str, Any]:
    """A copy of real record ``key`` with some fields replaced."""
    p = copy.deepcopy(REAL[key])
    p.update(overrides)
    return p


METADATA_TYPE = pa.struct(
    [
        ("category", pa.string()),
        ("context", pa.string()),
        ("grade", pa.string()),
        ("img_height", pa.int64()),
        ("img_width", pa.int64()),
        ("language", pa.string()),
        ("skills", pa.list_(pa.string())),
        ("source", pa.string()),
        ("split", pa.string()),
        ("task", pa.string()),
    ]
)
HF_SCHEMA = pa.schema(
    [
        ("pid", pa.string()),
        ("question", pa.string()),
        ("image", pa.string()),
        ("decoded_image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("choices", pa.list_(pa.string())),
        ("unit", pa.string()),
        ("precision", pa.float64()),
        ("answer", pa.string()),
        ("question_type", pa.string()),
        ("answer_type", pa.string()),
        ("metadata", METADATA_TYPE),
        ("query", pa.string()),
    ]
)


def hf_row(p: dict[str, Any], image: bytes | None, query: str | None) -> dict[str, Any]:
    row = {k: p.get(k) for k in HF_SCHEMA.names if k not in ("decoded_image", "query")}
    row["precision"] = None if p.get("precision") is None else float(p["precision"])
    row["decoded_image"] = None if image is None else {"bytes": image, "path": f"{p['pid']}.jpg"}
    row["query"] = query
    return row


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int = 10) -> Path:
    table = pa.Table.from_pylist(rows, schema=HF_SCHEMA)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


# ----------------------------------------------------------------------------- real records


def test_real_records_counts():
    items = real_items()
    assert len(items) == 33
    problems = [it["problem"] for it in items.values()]
    assert Counter(p["question_type"] for p in problems) == {"free_form": 20, "multi_choice": 13}
    assert Counter(p["answer_type"] for p in problems) == {
        "text": 13,
        "integer": 12,
        "float": 6,
        "list": 2,
    }
    languages = Counter(p["metadata"]["language"] for p in problems)
    assert languages == {"english": 28, "chinese": 3, "persian": 2}
    assert all(it["query"] == QUERIES[pid] for pid, it in items.items())
    assert all(it["split"] == "testmini" and it["layout"] == "root" for it in items.values())

    records = {pid: parse.restructure(it, {}) for pid, it in items.items()}
    formats = Counter(r["question_format"] for r in records.values())
    assert formats == {"open_ended": 20, "multiple_choice": 13}
    n_options = Counter(len(r["options"]) for r in records.values() if r["options"])
    assert n_options == {4: 5, 5: 3, 2: 3, 3: 1, 7: 1}
    assert Counter(r["precision"] for r in records.values()) == {None: 27, 1: 3, 2: 3}
    assert Counter(r["unit"] for r in records.values()) == {None: 30, "years": 2, "g": 1}


def test_real_field_values():
    items = real_items()
    r1 = parse.restructure(items["1"], {})
    assert r1["id"] == "MSR_mathvista_1"
    assert (r1["answer_type"], r1["answer_value"], r1["precision"]) == ("float", 1.2, 1)
    assert isinstance(r1["precision"], int)
    assert r1["question_format"] == "open_ended" and r1["options"] is None
    assert r1["answer"] == r1["gt_answer"] == [{"text": "1.2", "image": None}]
    text = r1["question"][0]["text"]
    assert text.startswith(REAL["1"]["question"])  # raw text kept, \r\n included
    assert "\r\n\r\nIn Figure" in text and text.endswith("Round the answer to 1 decimal place.")
    assert r1["question"][0]["image"] == "@0"
    assert r1["images"][0]["uri"].endswith("sample/mathvista/images/1.jpg")
    assert r1["source_metadata"]["metadata"] == REAL["1"]["metadata"]
    assert r1["source_metadata"]["query"] == QUERIES["1"]
    assert r1["provenance"]["license"].startswith("CC BY-SA 4.0")

    r506 = parse.restructure(items["506"], {})
    assert r506["answer_type"] == "list" and r506["answer_value"] == [2014, 2016]
    assert r506["answer"][0]["text"] == "[2014, 2016]"
    assert r506["question"][0]["text"].endswith("Answer with a Python list, e.g., [1, 2, 3].")
    r225 = parse.restructure(items["225"], {})
    assert r225["answer_value"] == [0, 2, 0, 2, 1, 7, 1, 2, 0, 3, 0, 6]

    r3 = parse.restructure(items["3"], {})
    assert r3["question_format"] == "multiple_choice"
    assert r3["options"] == [
        {"label": "A", "text": "135°"},
        {"label": "B", "text": "140°"},
        {"label": "C", "text": "145°"},
        {"label": "D", "text": "150°"},
    ]
    assert r3["answer_value"] == "C"
    assert r3["answer"] == r3["gt_answer"] == [{"text": "(C) 145°", "image": None}]
    assert r3["question"][0]["text"] == (
        "△ABC的两内角平分线OB、OC相交于点O，若∠A＝110°，则∠BOC＝（）\n"
        "Choices:\n(A) 135°\n(B) 140°\n(C) 145°\n(D) 150°\n"
        "Answer with the letter of the correct option (A, B, C, D)."
    )
    assert r3["source_metadata"]["metadata"]["language"] == "chinese"

    r27 = parse.restructure(items["27"], {})
    assert r27["unit"] == "years" and r27["answer_value"] == 11
    assert r27["answer"][0]["text"] == "11 years"
    assert r27["question"][0]["text"] == (
        "What is the age gap between these two people in image? (Unit: years)\n"
        "Answer with an integer."
    )
    r108 = parse.restructure(items["108"], {})
    assert (r108["answer_value"], r108["precision"]) == (51.04, 2)
    assert r108["question"][0]["text"].endswith("Round the answer to 2 decimal places.")
    r204 = parse.restructure(items["204"], {})
    assert r204["source_metadata"]["question"] == REAL["204"]["question"]  # Persian, unchanged
    r86 = parse.restructure(items["86"], {})
    assert [o["label"] for o in r86["options"]] == list("ABCDEFG")
    assert r86["answer_value"] == "G" and r86["answer"][0]["text"] == "(G) RFT U13B"


def test_field_mapping_on_real_records():
    items = real_items()
    got = {pid: parse.classify(it["problem"]["metadata"])[:2] for pid, it in items.items()}
    for pid, pair in EXPECTED_FIELDS.items():
        assert got[pid] == pair, pid
    assert Counter(got.values()) == {
        ("Mathematics", "Arithmetic"): 7,
        ("Statistics", "Charts and Plots"): 7,
        ("Mathematics", "Geometry"): 6,
        ("Physics", "Scientific Figures"): 4,
        ("Mathematics", "Word Problems"): 3,
        ("Mathematics", "Visual Counting"): 2,
        ("Mathematics", "Logic and Puzzles"): 1,
        ("Mathematics", "Functions"): 1,
        ("Statistics", "Tables"): 1,
        ("Statistics", "Documents and Infographics"): 1,
    }


def test_field_table_rules():
    table = source_table("mathvista")
    assert all(is_known(f, s) for f, s in iter_targets(table))
    names = [r["name"] for r in table["rules"]]
    assert len(names) == len(set(names)) and table["default"]["field"] == "Mathematics"
    # order matters: scientific + statistical on a plot is Statistics, on a figure Physics
    sci_stat = {"skills": ["scientific reasoning", "statistical reasoning"]}
    assert parse.classify({**sci_stat, "context": "line plot"})[:2] == (
        "Statistics",
        "Charts and Plots",
    )
    assert parse.classify({"skills": ["scientific reasoning"], "context": "natural image"}) == (
        "Physics",
        "General Science",
        "scientific_other",
    )
    assert parse.classify({}) == ("Mathematics", "Arithmetic", "default")
    assert parse.classify({"skills": "logical reasoning"})[1] == "Logic and Puzzles"
    assert parse.classify({"skills": ["GEOMETRY REASONING"], "context": "natural image"})[1] == (
        "Spatial Reasoning"
    )


def test_eight_choices_and_hints():
    p = real("10", choices=[f"opt {i}" for i in range(8)], answer="opt 7")
    item = parse.problem_to_item(
        p,
        key="10",
        position=0,
        source_file="t.json",
        splits=["testmini"],
        query=None,
        image_root="/r",
    )
    r = parse.restructure(item, {})
    assert [o["label"] for o in r["options"]] == list("ABCDEFGH")
    assert r["answer_value"] == "H" and r["answer"][0]["text"] == "(H) opt 7"
    assert (
        "(H) opt 7\nAnswer with the letter of the correct option (A, B, C, D, E, F, G, H)."
        in (r["question"][0]["text"])
    )
    assert parse.format_hint("free_form", "float", None, []) == "Answer with a decimal number."
    text_hint = parse.format_hint("free_form", "text", None, [])
    assert text_hint == "Answer with a word or a short phrase."


def test_precision_and_typed_answers():
    assert parse.parse_precision(1.0, "w") == 1 and parse.parse_precision(2, "w") == 2
    assert parse.parse_precision(float("nan"), "w") is None
    assert parse.parse_precision(None, "w") is None
    for bad in (1.5, True, "2", -1):
        with pytest.raises(RecordError) as e:
            parse.parse_precision(bad, "w")
        assert e.value.reason == "bad_precision"
    assert parse.typed_answer("['a', 'b']", "list", "w") == ["a", "b"]  # literal_eval fallback
    assert parse.typed_answer("(1, 2.5)", "list", "w") == [1, 2.5]
    assert parse.typed_answer(" 7 ", "integer", "w") == 7
    assert parse.typed_answer("Yes ", "text", "w") == "Yes "  # text kept raw
    for text, kind in (("[1, ", "list"), ("{1, 2}", "list"), ("4.0", "integer"), ("nan", "float")):
        with pytest.raises(RecordError) as e:
            parse.typed_answer(text, kind, "w")
        assert e.value.reason == "answer_unparseable"


# ----------------------------------------------------------------------------- parquet layout


def test_parquet_layout_matches_json_layout(tmp_path):
    pids = list(REAL)
    rows = [
        hf_row(REAL[pid], (SAMPLE / REAL[pid]["image"]).read_bytes(), QUERIES[pid]) for pid in pids
    ]
    test_row = hf_row(real("2", pid="1001", answer=""), make_image("t"), None)
    test_row["metadata"] = {**test_row["metadata"], "split": "test"}
    path = write_parquet(tmp_path / "testmini-00000-of-00001.parquet", [*rows, test_row])
    assert pq.read_schema(path).field("precision").type == pa.float64()

    p_items, p_dead = read_direct({"parquet": str(tmp_path / "*.parquet")})
    assert [d["reason"] for d in p_dead] == ["split_not_selected"]
    assert p_dead[0]["source_id"] == "1001"
    assert [it["source_id"] for it in p_items] == pids
    j_items = real_items()

    def comparable(record: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(record)
        for im in out["images"]:
            im.pop("source_uri")
        out["provenance"].pop("source_file")
        out["source_metadata"].pop("layout")
        return out

    for item in p_items:
        assert item["layout"] == "parquet" and isinstance(item["image_bytes"], bytes)
        rec_p, rec_j = finish(item), finish(j_items[item["source_id"]])
        assert comparable(rec_p) == comparable(rec_j)
        assert validate_record(rec_p) == []
        assert rec_p["images"][0]["source_uri"].endswith(f"#images/{item['source_id']}.jpg")
    r1 = parse.restructure(next(it for it in p_items if it["source_id"] == "1"), {})
    assert r1["precision"] == 1 and isinstance(r1["precision"], int)


def test_parquet_bad_rows_and_file(tmp_path):
    no_image = hf_row(REAL["2"], None, None)
    no_question = hf_row(REAL["4"], make_image("q"), None)
    no_question["question"] = None
    half_precision = hf_row(REAL["1"], make_image("p"), None)
    half_precision["precision"] = 1.5
    write_parquet(tmp_path / "a.parquet", [no_image, no_question, half_precision])
    (tmp_path / "b.parquet").write_bytes(b"not a parquet file")
    items, dead = read_direct({"parquet": str(tmp_path / "*.parquet")})
    assert sorted((d["reason"], d["source_id"]) for d in dead) == [
        ("malformed_file", "b.parquet"),  # relative to the configured glob: no machine path
        ("missing_key", "2"),
        ("missing_key", "4"),
    ]
    assert [it["source_id"] for it in items] == ["1"]
    with pytest.raises(RecordError) as e:
        parse.restructure(items[0], {})
    assert e.value.reason == "bad_precision"


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_reconcile(tmp_path):
    problems = {
        "1": real("1"),
        "3": real("3", answer="146°"),  # not among the choices
        "4": {k: v for k, v in real("4").items() if k != "question"},  # missing key
        "5": real("5", image="../outside/5.jpg"),  # escapes the root
        "6": real("6", image="images/gone.jpg"),  # file not there
        "7": real("8"),  # stored under the wrong key (pid 8)
        "9": "not an object",
        "1001": real("2", pid="1001", answer="", metadata=TEST_META),
        "23": real("23", answer_type="fraction"),
    }
    root = write_root(tmp_path / "data", problems)
    (root / "images" / "gone.jpg").unlink(missing_ok=True)
    items, dead = read_direct(root_options(root))
    assert sorted((d["reason"], d["source_id"]) for d in dead) == [
        ("malformed_record", "9"),
        ("missing_key", "4"),
        ("pid_mismatch", "7"),
        ("split_not_selected", "1001"),
    ]
    assert all(d["stage"] == "read" and d["detail"] for d in dead)
    missing = next(d for d in dead if d["reason"] == "missing_key")
    assert "missing key 'question'" in missing["detail"]

    records, later = [], []
    for item in items:
        try:
            records.append(finish(item))
        except RecordError as exc:
            later.append((exc.reason, item["source_id"]))
    assert sorted(later) == [
        ("answer_not_in_choices", "3"),
        ("image_missing", "6"),
        ("path_escapes_root", "5"),
        ("unknown_answer_type", "23"),
    ]
    assert [r["id"] for r in records] == ["MSR_mathvista_1"]
    assert len(problems) == len(items) + len(dead) == len(records) + len(later) + len(dead)

    # selecting the test split turns the unlabelled problem into no_gold_label
    _, dead_all = read_direct(root_options(root, splits=["testmini", "test"]))
    assert ("no_gold_label", "1001") in {(d["reason"], d["source_id"]) for d in dead_all}


def test_answer_matching_two_identical_choices_is_ambiguous(tmp_path):
    # testmini pid 781 (not in the sample): choices 9, 12, 18, 18 and answer 18
    item = parse.problem_to_item(
        real("5", choices=["9", "12", "18", "18"], answer="18"),
        key="5",
        position=0,
        source_file="t.json",
        splits=["testmini"],
        query=None,
        image_root=str(tmp_path),
    )
    with pytest.raises(RecordError) as e:
        parse.restructure(item, {})
    assert e.value.reason == "ambiguous_answer_choice"
    assert "'18'" in e.value.detail and "2 identical choices" in e.value.detail


def test_multi_choice_without_choices(tmp_path):
    item = parse.problem_to_item(
        real("8", choices=None),
        key="8",
        position=0,
        source_file="t.json",
        splits=["testmini"],
        query=None,
        image_root=str(tmp_path),
    )
    with pytest.raises(RecordError) as e:
        parse.restructure(item, {})
    assert e.value.reason == "missing_key"
    item["problem"]["choices"] = ["only one"]
    with pytest.raises(RecordError) as e:
        parse.restructure(item, {})
    assert e.value.reason == "bad_choices"


def test_malformed_files(tmp_path):
    bad_json = tmp_path / "a"
    bad_json.mkdir()
    (bad_json / "testmini.json").write_text('{"1": {', "utf-8")
    items, dead = read_direct(root_options(bad_json))
    assert items == [] and [d["reason"] for d in dead] == ["malformed_file"]
    assert dead[0]["source_id"].endswith("testmini.json")

    a_list = write_root(tmp_path / "b", {})
    (a_list / "testmini.json").write_text("[1, 2]", "utf-8")
    assert [d["reason"] for d in read_direct(root_options(a_list))[1]] == ["malformed_file"]

    # a broken optional query.json is one dead letter; the problems go on without it
    bad_query = write_root(tmp_path / "c", {"1": real("1")}, query__json="{oops")
    items, dead = read_direct(root_options(bad_query))
    assert [it["source_id"] for it in items] == ["1"] and items[0]["query"] is None
    assert [(d["reason"], d["source_id"]) for d in dead] == [("malformed_file", "query.json")]
    assert "query.json" in dead[0]["detail"]


def test_check_options(tmp_path):
    parse.check_options(root_options(SAMPLE))
    with pytest.raises(PipelineConfigError, match="exactly one"):
        parse.check_options({"splits": ["testmini"]})
    with pytest.raises(PipelineConfigError, match="exactly one"):
        parse.check_options({"root": str(SAMPLE), "parquet": str(SAMPLE / "x.parquet")})
    with pytest.raises(PipelineConfigError, match="does not exist"):
        parse.check_options(root_options(tmp_path / "nowhere"))
    with pytest.raises(PipelineConfigError, match=r"testmini\.json"):
        parse.check_options(root_options(tmp_path))
    with pytest.raises(PipelineConfigError, match="no file matches"):
        parse.check_options({"parquet": str(tmp_path / "*.parquet")})
    with pytest.raises(PipelineConfigError, match="splits"):
        parse.check_options(root_options(SAMPLE, splits=[]))


# ----------------------------------------------------------------------------- Beam


def test_read_mathvista_pipeline_bad_inputs(tmp_path):
    problems = {
        "1": real("1"),
        "4": {k: v for k, v in real("4").items() if k != "answer_type"},
        "1001": real("2", pid="1001", metadata={**REAL["2"]["metadata"], "split": "val"}),
    }
    root = write_root(tmp_path / "data", problems, query__json=json.dumps({"1": "q1"}))
    unlabelled = real("2", pid="1002", answer=None, metadata=TEST_META)
    (root / "test.json").write_text(json.dumps({"1002": unlabelled}), "utf-8")
    options = root_options(root, splits=["testmini", "test"])
    with TestPipeline() as p:
        out = p | "ReadMathVista" >> ReadMathVista(options)
        got = out.drafts | "Ids" >> beam.Map(
            lambda d: (d["provenance"]["source_id"], d["source_metadata"]["query"])
        )
        assert_that(got, equal_to([("1", "q1")]), label="Items")
        reasons = out[DEAD] | "Reasons" >> beam.Map(lambda d: (d["reason"], d["source_id"]))
        expected = [("missing_key", "4"), ("no_gold_label", "1002"), ("split_not_selected", "1001")]
        assert_that(reasons, equal_to(expected), label="Dead")


def test_every_sample_item_is_a_valid_record():
    items = real_items()
    assert len(items) == 33
    for pid, item in items.items():
        record = finish(item)
        assert validate_record(record) == [], pid
        assert record["id"] == f"MSR_mathvista_{pid}"
        assert record["category"] == "MSR" and record["provenance"]["source_id"] == pid
        assert record["images"][0]["format"] == "jpeg"
        meta = REAL[pid]["metadata"]
        w, h = record["images"][0]["width"], record["images"][0]["height"]
        assert max(w, h) <= 400
        assert math.isclose(w / h, meta["img_width"] / meta["img_height"], rel_tol=0.1)


def test_read_mathvista_pipeline_parquet(tmp_path):
    rows = [hf_row(REAL[pid], make_image(f"pq{pid}"), QUERIES[pid]) for pid in ("1", "3", "506")]
    rows[2]["answer"] = ""
    write_parquet(tmp_path / "t.parquet", rows, row_group_size=2)
    options = {"parquet": str(tmp_path / "t.parquet"), "splits": ["testmini"]}
    with TestPipeline() as p:
        out = p | "ReadMathVista" >> ReadMathVista(options)
        got = out.drafts | "Ids" >> beam.Map(
            lambda d: (d["provenance"]["source_id"], len(d["images"][0]["bytes"]))
        )
        sizes = [(r["pid"], len(r["decoded_image"]["bytes"])) for r in rows[:2]]
        assert_that(got, equal_to(sizes), label="Items")
        reasons = out[DEAD] | "Reasons" >> beam.Map(lambda d: (d["reason"], d["source_id"]))
        assert_that(reasons, equal_to([("no_gold_label", "506")]), label="Dead")
