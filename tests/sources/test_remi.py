"""Tests for the ReMI source: tag splitting, restructuring, the parquet reader and the sample.

No real ReMI row is public outside Hugging Face, so the fixtures are the synthetic sample in
sample/remi/ (tools/make_sample_remi.py) and small parquet files built in ``tmp_path`` with
the same HF schema.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.images import load_images
from schemas.deadletter import DEAD, STAGE_READ, STAGE_RESTRUCTURE
from schemas.errors import PipelineConfigError, RecordError
from schemas.taxonomy import is_known, source_table
from schemas.validation import validate_record
from sources.remi import ReadReMI, parse
from tests.sources.reading import read_units
from tools import make_sample_remi
from tools.sample_images import make_image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample" / "remi"
TASKS = [
    "EmojiAlgebra",
    "FuncRead",
    "GeomShape",
    "GeomCost",
    "Collisions",
    "Clocks",
    "Schedule",
    "Charts",
    "CodeEdit",
    "Isomorphism",
    "Maps",
    "RefCoco",
    "IQ",
]
EXPECTED_SPLITS = {"test": 13, "train": 2}
PNG = make_image("remi-test-png", fmt="PNG")
JPG = make_image("remi-test-jpg", fmt="JPEG")


# ---------------------------------------------------------------------------- helpers


def image(data: bytes = PNG, path: str | None = None) -> dict[str, Any]:
    return {"bytes": data, "path": path}


def hf_row(question: str, n_images: int, task: str = "Charts", label: str = "42") -> dict:
    """A parquet row with image_1..image_<n_images> set and the rest null."""
    row: dict[str, Any] = {"question": question, "label": label, "task": task}
    for n in range(1, 7):
        row[f"image_{n}"] = (
            image(make_image(f"row-{question}-{n}", fmt="PNG")) if n <= n_images else None
        )
    return row


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = schema or make_sample_remi.hf_schema()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, **kw)
    return path


def item(question: str, images: dict[int, Any], task: str = "Charts", label: str = "42") -> dict:
    """A reader item built directly (as ``make_item`` would)."""
    return {
        "source": "remi",
        "source_id": "test/0",
        "split": "test",
        "source_file": "/data/remi/test.parquet",
        "shard": 0,
        "row": 0,
        "question": question,
        "label": label,
        "task": task,
        "images": {n: images.get(n) for n in range(1, 7)},
    }


def reason_of(fn, *args) -> str:
    with pytest.raises(RecordError) as info:
        fn(*args)
    return info.value.reason


def sample_items() -> list[dict]:
    """Every item of the sample, read by the DoFn directly (no pipeline)."""
    reader = ReadReMI({"parquet": str(SAMPLE / "*.parquet")})
    out = []
    for path in sorted(SAMPLE.glob("*.parquet")):
        out.extend(reader.read_file(str(path)))
    return out


# ------------------------------------------------------------------------ tag splitting


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "<image1><image2>The mean of X.",
            [("image", 1), ("image", 2), ("text", "The mean of X.")],
        ),
        (
            "Compare <image1> and <image2>.",
            [
                ("text", "Compare "),
                ("image", 1),
                ("text", " and "),
                ("image", 2),
                ("text", "."),
            ],
        ),
        ("Which one? <image1><image2>", [("text", "Which one? "), ("image", 1), ("image", 2)]),
        ("<image1><image2><image3>", [("image", 1), ("image", 2), ("image", 3)]),
        (
            "<image1> <image2>\n<image3> Go",
            [
                ("image", 1),
                ("image", 2),
                ("image", 3),
                ("text", " Go"),
            ],
        ),
        ("no tags at all ", [("text", "no tags at all ")]),
        ("", []),
        ("<image2> before <image1>", [("image", 2), ("text", " before "), ("image", 1)]),
    ],
    ids=[
        "leading-adjacent",
        "between",
        "trailing",
        "no-text",
        "whitespace-only",
        "no-tags",
        "empty",
        "out-of-order",
    ],
)
def test_split_question(question: str, expected: list) -> None:
    assert parse.split_question(question) == expected


def test_split_question_keeps_raw_text() -> None:
    q = "Résumé\r\n  x² + 1  \t<image1>終わり  "
    assert parse.split_question(q) == [
        ("text", "Résumé\r\n  x² + 1  \t"),
        ("image", 1),
        ("text", "終わり  "),
    ]


def test_split_question_leaves_non_tags_alone() -> None:
    q = "if a < b and <img src=x> or <imagery> then <image1>"
    assert parse.split_question(q) == [
        ("text", "if a < b and <img src=x> or <imagery> then "),
        ("image", 1),
    ]


@pytest.mark.parametrize(
    "tag", ["<image0>", "<image 1>", "<Image1>", "<image01>", "<image_1>", "<IMAGE2>", "< image3 >"]
)
def test_malformed_tag(tag: str) -> None:
    assert reason_of(parse.split_question, f"look at {tag} please") == "bad_image_tag"


# ---------------------------------------------------------------------------- restructure


def test_restructure_record_shape() -> None:
    draft = parse.restructure(
        item(
            "<image1><image2>The mean is X%. Find X.", {1: image(PNG), 2: image(JPG)}, label="47.5"
        ),
        {},
    )
    assert draft["id"] == "MSR_remi_test_0"
    assert (draft["category"], draft["field"], draft["subfield"]) == (
        "MSR",
        "Statistics",
        "Charts and Plots",
    )
    assert draft["question"] == [
        {"text": None, "image": "@0"},
        {"text": None, "image": "@1"},
        {"text": "The mean is X%. Find X.", "image": None},
    ]
    assert draft["answer"] == draft["gt_answer"] == [{"text": "47.5", "image": None}]
    assert (draft["question_format"], draft["options"]) == ("open_ended", None)
    assert (draft["answer_type"], draft["answer_value"]) == ("text", "47.5")
    assert [im["uri"] for im in draft["images"]] == [
        "/data/remi/test.parquet#row=0/image_1",
        "/data/remi/test.parquet#row=0/image_2",
    ]
    assert [im["bytes"] for im in draft["images"]] == [PNG, JPG]
    assert draft["provenance"] == {
        "source": "remi",
        "split": "test",
        "source_id": "test/0",
        "license": parse.LICENSE,
        "source_file": "/data/remi/test.parquet",
    }
    meta = draft["source_metadata"]
    assert meta["task"] == "Charts" and meta["n_images"] == 2 and meta["image_tags"] == [1, 2]
    assert (meta["mmie_truncated"], meta["mmie_skipped"]) == (False, False)
    record = load_images(draft)
    assert validate_record(record) == []


def test_label_kept_raw() -> None:
    label = " Dog, puppy ,PUPPY 12% "
    draft = parse.restructure(
        item("<image1><image2>?", {1: image(), 2: image(JPG)}, "RefCoco", label)
    )
    assert draft["gt_answer"][0]["text"] == label and draft["answer_value"] == label


@pytest.mark.parametrize(
    ("n", "truncated", "skipped"),
    [(2, False, False), (3, False, False), (4, True, False), (5, True, True), (6, True, True)],
)
def test_mmie_scorer_flags(n: int, truncated: bool, skipped: bool) -> None:
    q = "".join(f"<image{i}>" for i in range(1, n + 1)) + " Which?"
    imgs = {i: image(make_image(f"flag-{i}", fmt="PNG")) for i in range(1, n + 1)}
    meta = parse.restructure(item(q, imgs))["source_metadata"]
    assert meta["n_images"] == n
    assert (meta["mmie_truncated"], meta["mmie_skipped"]) == (truncated, skipped)


def test_out_of_order_and_repeated_tags() -> None:
    draft = parse.restructure(
        item(
            "<image2> is the key for <image1>; see <image2> again.", {1: image(PNG), 2: image(JPG)}
        )
    )
    # images are listed once each, in order of first use
    assert [im["uri"].rsplit("/", 1)[1] for im in draft["images"]] == ["image_2", "image_1"]
    assert [s["image"] for s in draft["question"] if s["image"]] == ["@0", "@1", "@0"]
    assert draft["source_metadata"]["image_tags"] == [2, 1, 2]
    assert validate_record(load_images(draft)) == []


def test_shard_token_in_id() -> None:
    it = item("<image1><image2>", {1: image(), 2: image(JPG)})
    it.update(shard=3, row=7, source_id="test/3/7")
    assert parse.restructure(it)["id"] == "MSR_remi_test_3_7"


@pytest.mark.parametrize(
    ("question", "images", "reason"),
    [
        ("<image1><image2><image3>", {1: image(), 2: image()}, "image_tag_without_image"),
        ("<image1> and <image2>", {1: image(), 2: image(), 3: image()}, "image_without_tag"),
        ("<image1> only", {1: image(), 4: image()}, "image_without_tag"),
        ("no tags here", {1: image()}, "image_without_tag"),
        ("no tags and no images", {}, "no_images"),
        ("<image1><image7>", {1: image()}, "bad_image_tag"),
        ("<image1><image01>", {1: image()}, "bad_image_tag"),
        (
            "<image1><image2>",
            {1: image(), 2: {"bytes": None, "path": "x.png"}},
            "image_without_bytes",
        ),
        ("<image1><image2>", {1: image(), 2: {"bytes": b"", "path": None}}, "image_without_bytes"),
    ],
    ids=[
        "tag-null-image",
        "image-no-tag",
        "gap-image-no-tag",
        "no-tags",
        "no-images",
        "tag-gt-6",
        "tag-leading-zero",
        "null-bytes",
        "empty-bytes",
    ],
)
def test_mismatch_reasons(question: str, images: dict, reason: str) -> None:
    assert reason_of(parse.restructure, item(question, images)) == reason


def test_bad_tag_detail_names_file_and_row() -> None:
    with pytest.raises(RecordError) as info:
        parse.restructure(item("<image1><image9>", {1: image()}))
    assert "test.parquet row 0" in info.value.detail and "<image9>" in info.value.detail


def test_unknown_task() -> None:
    it = item("<image1><image2>", {1: image(), 2: image()}, task="Clock")
    assert reason_of(parse.restructure, it) == "unknown_task"


def test_empty_label_and_missing_keys() -> None:
    assert reason_of(parse.restructure, item("<image1>", {1: image()}, label="")) == "empty_label"
    it = item("<image1>", {1: image()})
    del it["label"]
    assert reason_of(parse.restructure, it) == "missing_key"
    it = item("<image1>", {1: image()})
    it["question"] = None
    assert reason_of(parse.restructure, it) == "missing_key"


# ------------------------------------------------------------------------ file-level helpers


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/remi/test.parquet", ("test", 0)),
        ("/data/remi/train.parquet", ("train", 0)),
        ("gs://bucket/remi/default/test/0000.parquet", ("test", 0)),
        ("/hf/refs/convert/parquet/default/train/0001.parquet", ("train", 1)),
        ("/hf/data/test-00002-of-00003.parquet", ("test", 2)),
    ],
)
def test_split_of(path: str, expected: tuple[str, int]) -> None:
    assert parse.split_of(path) == expected


def test_check_columns() -> None:
    schema = make_sample_remi.hf_schema()
    assert parse.check_columns(schema, "f") == [1, 2, 3, 4, 5, 6]
    four = pa.schema([schema.field(n) for n in ("task", "question", "label", "image_1", "image_3")])
    assert parse.check_columns(four.append(pa.field("extra", pa.int64())), "f") == [1, 3]
    nulls = pa.schema(
        [*(schema.field(n) for n in ("question", "label", "task")), pa.field("image_1", pa.null())]
    )
    assert parse.check_columns(nulls, "f") == [1]
    for bad in (
        schema.remove(schema.get_field_index("label")),
        schema.set(0, pa.field("question", pa.int64())),
        schema.set(3, pa.field("image_1", pa.binary())),
        pa.schema([schema.field(n) for n in ("question", "label", "task")]),
    ):
        assert reason_of(parse.check_columns, bad, "f") == "malformed_file"


def test_fields_table_covers_the_13_tasks() -> None:
    table = source_table("remi")["tasks"]
    assert sorted(table) == sorted(TASKS)
    assert all(is_known(t["field"], t["subfield"]) for t in table.values())
    assert {t["field"] for t in table.values()} == {
        "Mathematics",
        "Statistics",
        "Physics",
        "Coding",
    }


def test_check_options(tmp_path: Path) -> None:
    parse.check_options({"parquet": str(SAMPLE / "test.parquet")})
    parse.check_options({"parquet": str(SAMPLE / "*.parquet")})
    with pytest.raises(PipelineConfigError):
        parse.check_options({"parquet": str(tmp_path / "missing.parquet")})
    with pytest.raises(PipelineConfigError):
        parse.check_options({"parquet": str(tmp_path / "*.parquet")})


# --------------------------------------------------------------------------- the reader


def run_reader(pattern: str) -> tuple[list[dict], list[dict]]:
    """Call the reader's per-file step on every matching file (no pipeline); (items, dead)."""
    return read_units(ReadReMI({"parquet": pattern}))


def test_reader_bad_inputs_reconcile(tmp_path: Path) -> None:
    schema = make_sample_remi.hf_schema()
    good = hf_row("<image1><image2>Which?", 2)
    rows = [
        good,
        {**good, "label": None},
        {**good, "question": None},
        {**good, "task": None},
        hf_row("<image1><image2><image3>?", 2),  # image_tag_without_image (restructure)
        {**good, "task": "Sudoku"},  # unknown_task (restructure)
        hf_row("<image1>, then <image2> and <image3>", 3, task="IQ", label="C"),
    ]
    write_parquet(tmp_path / "in" / "test.parquet", rows)
    no_label = schema.remove(schema.get_field_index("label"))
    write_parquet(
        tmp_path / "in" / "train.parquet",
        [{k: v for k, v in good.items() if k != "label"}],
        schema=no_label,
    )
    (tmp_path / "in" / "junk.parquet").write_bytes(b"this is not parquet")

    pattern = str(tmp_path / "in" / "*.parquet")
    p = TestPipeline()
    out = p | "ReadReMI" >> ReadReMI({"parquet": pattern})
    assert_that(
        out["drafts"] | beam.Map(lambda d: d["provenance"]["source_id"]),
        equal_to(["test/0", "test/6"]),
        label="Drafts",
    )
    assert_that(
        out[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"])),
        equal_to(
            [
                (STAGE_READ, "missing_key", "test/1"),
                (STAGE_READ, "missing_key", "test/2"),
                (STAGE_READ, "missing_key", "test/3"),
                # whole files are named relative to the configured glob, never by machine path
                (STAGE_READ, "malformed_file", "train.parquet"),
                (STAGE_READ, "malformed_file", "junk.parquet"),
                # the reader restructures its items: a rejected one is a restructure letter
                (STAGE_RESTRUCTURE, "image_tag_without_image", "test/4"),
                (STAGE_RESTRUCTURE, "unknown_task", "test/5"),
            ]
        ),
        label="Dead",
    )
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("ReadReMI"))["counters"]
    }
    assert counters == {
        "files": 3,
        "items": 4,
        "warn_unknown_task": 1,
        "dropped_missing_key": 3,
        "dropped_malformed_file": 2,
    }

    items, dead = run_reader(pattern)
    # read = items + read dead letters: 7 rows of test.parquet, one unit per bad file
    assert len(items) + len(dead) == len(rows) + 2
    outcomes = Counter()
    for it in items:
        try:
            parse.restructure(it, {})
            outcomes["record"] += 1
        except RecordError as exc:
            outcomes[exc.reason] += 1
    assert outcomes == {"record": 2, "image_tag_without_image": 1, "unknown_task": 1}
    missing = [d for d in dead if d["reason"] == "missing_key"]
    assert (
        "'label' is null" in missing[0]["detail"] and "test.parquet row 1" in missing[0]["detail"]
    )
    assert "label" in next(d for d in dead if d["source_id"].endswith("train.parquet"))["detail"]


def test_reader_hf_convert_layout_gives_same_ids(tmp_path: Path) -> None:
    rows = [hf_row(f"<image1><image2> row {i}", 2) for i in range(3)]
    write_parquet(tmp_path / "plain" / "test.parquet", rows)
    write_parquet(tmp_path / "hf" / "default" / "test" / "0000.parquet", rows)
    plain, _ = run_reader(str(tmp_path / "plain" / "*.parquet"))
    conv, _ = run_reader(str(tmp_path / "hf" / "default" / "*" / "*.parquet"))
    assert [it["split"] for it in conv] == ["test"] * 3
    ids = lambda items: [parse.restructure(it)["id"] for it in items]  # noqa: E731
    assert ids(plain) == ids(conv) == ["MSR_remi_test_0", "MSR_remi_test_1", "MSR_remi_test_2"]


def test_reader_streams_in_batches(tmp_path: Path) -> None:
    rows = [hf_row(f"<image1><image2> row {i}", 2, label=str(i)) for i in range(11)]
    path = write_parquet(tmp_path / "test.parquet", rows, row_group_size=4)
    reader = ReadReMI({"parquet": str(path)})
    reader.batch_rows = 3
    items = list(reader.read_file(str(path)))
    assert [it["row"] for it in items] == list(range(11))
    assert [it["label"] for it in items] == [str(i) for i in range(11)]
    assert all(set(it["images"]) == {1, 2, 3, 4, 5, 6} for it in items)
    assert all(it["images"][3] is None and it["images"][1]["bytes"] for it in items)


def test_reader_corrupt_row_group_dead_letters_each_row(tmp_path: Path) -> None:
    rows = [hf_row(f"<image1><image2> row {i}", 2) for i in range(6)]
    path = write_parquet(tmp_path / "test.parquet", rows, row_group_size=2)
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(1).column(meta.schema.names.index("bytes"))  # image_1.bytes
    start, size = col.data_page_offset, col.total_compressed_size
    data = bytearray(path.read_bytes())
    data[start : start + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    items, dead = run_reader(str(path))
    assert [it["row"] for it in items] == [0, 1, 4, 5]
    assert [(d["reason"], d["source_id"]) for d in dead] == [
        ("undecodable_row", "test/2"),
        ("undecodable_row", "test/3"),
    ]
    assert "row group 1" in dead[0]["detail"]
    assert len(items) + len(dead) == len(rows)


# ------------------------------------------------------------------------------ the sample


def test_sample_matches_generator() -> None:
    for split, rows in (
        ("test", make_sample_remi.TEST_ROWS),
        ("train", make_sample_remi.TRAIN_ROWS),
    ):
        expected = pa.Table.from_pylist(
            make_sample_remi.build_rows(split, rows), schema=make_sample_remi.hf_schema()
        )
        actual = pq.read_table(SAMPLE / f"{split}.parquet")
        assert actual.equals(expected, check_metadata=True), split


def test_sample_covers_the_tasks_and_tag_shapes() -> None:
    table = pq.read_table(SAMPLE / "test.parquet")
    assert sorted(table.column("task").to_pylist()) == sorted(TASKS)
    questions = table.column("question").to_pylist()
    assert any(q.startswith("<image1>") for q in questions)  # leading tag
    assert any(q.endswith(">") for q in questions)  # trailing tag
    assert any(re.search(r"<image\d><image\d>", q) for q in questions)  # adjacent tags
    counts = Counter(m for q in questions for m in [len(re.findall(r"<image\d>", q))])
    assert set(counts) == {2, 3, 4, 5, 6}
    assert (SAMPLE / "SOURCE.md").exists()
    assert sum(p.stat().st_size for p in SAMPLE.iterdir()) < 1_500_000


def test_every_sample_item_is_a_valid_record() -> None:
    items = sample_items()
    assert Counter(it["split"] for it in items) == EXPECTED_SPLITS
    ids = set()
    n_images: Counter = Counter()
    flags: Counter = Counter()
    for it in items:
        record = load_images(parse.restructure(it, {}))
        meta = record["source_metadata"]
        n_images[meta["n_images"]] += 1
        flags.update(k for k in ("mmie_truncated", "mmie_skipped") if meta[k])
        assert validate_record(record) == [], it["source_id"]
        rid = record["id"]
        assert min(im["width"] for im in record["images"]) >= 150
        assert len(record["images"]) == record["source_metadata"]["n_images"]
        assert record["gt_answer"][0]["text"] == it["label"]
        ids.add(rid)
    assert len(ids) == len(items)
    # the numbers stated in sample/remi/SOURCE.md
    assert n_images == {2: 7, 3: 4, 4: 2, 5: 1, 6: 1}
    assert flags == {"mmie_truncated": 4, "mmie_skipped": 2}


def test_sample_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "parquet",
        data_files={"test": str(SAMPLE / "test.parquet"), "train": str(SAMPLE / "train.parquet")},
        cache_dir=str(tmp_path),
    )
    assert {k: v.num_rows for k, v in ds.items()} == EXPECTED_SPLITS
    features = ds["test"].features
    assert all(isinstance(features[f"image_{n}"], datasets.Image) for n in range(1, 7))
    assert all(features[c].dtype == "string" for c in ("question", "label", "task"))
    first = ds["test"][0]
    assert first["image_1"].size == (256, 192) and first["image_6"] is None


# ------------------------------------------------------------------- odd file names (issue 19)

ODD_NAMES = ["a\\b", "c[1]", "d*e", "f?g", "h i", "test"]


@pytest.mark.slow
def test_every_file_a_glob_matches_is_read_or_dead_lettered(tmp_path: Path, capsys) -> None:
    """A backslash, ``[``, ``*``, ``?`` or a space in a file name: the file is still read
    (Beam's matcher let a name with a backslash vanish); a link to nowhere that the glob
    matches is a dead letter, not a gap in the counts."""
    import json

    from pipelines.cli import main

    table = pq.read_table(SAMPLE / "test.parquet")
    folder = tmp_path / "remi"
    folder.mkdir()
    for i, name in enumerate(ODD_NAMES):
        pq.write_table(table.slice(i, 1), folder / f"{name}.parquet")
    (folder / "gone.parquet").symlink_to("deleted-since")  # a link to nowhere, inside
    (folder / "notes.txt").write_text("not matched")
    config = tmp_path / "odd.yaml"
    config.write_text("version: 1\nsources:\n  remi:\n    parquet: remi/*.parquet\n")
    out = tmp_path / "out"
    argv = ["build", "--config", str(config), "--output", str(out), "--no-clip"]
    assert main(argv) == 0, capsys.readouterr().err
    stats = json.loads((out / "stats.json").read_text("utf-8"))
    remi = stats["sources"]["remi"]
    assert remi["read"] == len(ODD_NAMES) + 1  # one row per file, one unit for the dead link
    assert remi["read"] == remi["written"] + sum(remi["dropped"].values())
    assert remi["dropped"] == {"unreadable_file": 1}
    records = pq.read_table(out / "records").to_pylist()
    files = sorted(r["provenance"]["source_file"] for r in records)
    # relative to the source's root (the glob's folder), never to the config's or a machine's
    assert files == sorted(f"{name}.parquet" for name in ODD_NAMES)
    dead = [
        json.loads(line)
        for path in (out / "dead_letters").glob("*.jsonl")
        for line in path.read_text("utf-8").splitlines()
    ]
    assert [(d["reason"], d["source_id"]) for d in dead] == [("unreadable_file", "gone.parquet")]
