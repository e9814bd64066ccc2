"""What a release holds: MMIE export rules, annotation decisions, selection, shards, report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from PIL import Image

from pipelines.publish.card import md
from pipelines.publish.cli import main as publish_main
from pipelines.publish.mmie_export import scorer_view
from pipelines.publish.shards import FEATURES, plan
from schemas.buildio import read_records
from tests.publish.conftest import HOSTILE, pull_agreement, write_annotations

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


def _mmie_reads(item: dict, input_dir: Path) -> tuple[list[str], list[str]]:
    """MMIE's dataset.get_dataset reading rule, restated: images and answer texts it keeps."""
    images: list[str] = []
    for q in item["question"]:
        if q["image"] is not None and (input_dir / q["image"]).exists():
            images.append(q["image"])
    texts: list[str] = []
    for a in item["answer"]:
        if a["text"] is not None:
            texts.append(a["text"])
        if len(images) > 2:
            break
        if a["image"] is not None and (input_dir / a["image"]).exists():
            images.append(a["image"])
        if len(images) > 2:
            break
    return images, texts


def test_mmie_export_follows_mmie_format_rules(release, sample_build):
    mmie = release / "mmie"
    items = json.loads((mmie / "data.json").read_text())
    records = {r["id"]: r for r in read_records(str(sample_build))}
    limits = json.loads((mmie / "scorer_limits.json").read_text())
    exported = {i["id"] for i in items}
    not_exported = {e["id"] for e in limits["not_exported"]}
    assert exported | not_exported == set(records) and not exported & not_exported
    assert {records[i]["category"] for i in not_exported} == {"IF"}
    assert {records[i]["category"] for i in exported} == {"SA", "PBL", "MSR"}
    on_disk = set(os.listdir(mmie / "images"))
    used = set()
    truncated, skipped = set(), set()
    for item in items:
        assert set(item) == {"id", "question", "answer", "model", "gt_answer"}
        assert item["model"] == "gt"
        rec = records[item["id"]]
        routed = [t for t in ("SA", "PBL", "MSR") if t in item["id"]]
        assert routed == [rec["category"]], item["id"]  # MMIE's substring routing
        for key in ("question", "answer", "gt_answer"):
            for seg in item[key]:
                assert set(seg) == {"text", "image"}
                if seg["image"] is not None:
                    assert seg["image"].startswith("images/") and ".." not in seg["image"]
                    assert (mmie / seg["image"]).is_file()
                    used.add(seg["image"].removeprefix("images/"))
        if rec["category"] in ("SA", "PBL"):
            assert item["gt_answer"] == [{"text": None, "image": None}]
        else:
            assert item["gt_answer"][0]["text"] == rec["gt_answer"][0]["text"]
            assert item["gt_answer"][0]["text"]
        assert item["question"] == rec["question"] and item["answer"] == rec["answer"]
        images, texts = _mmie_reads(item, mmie)
        all_texts = [a["text"] for a in item["answer"] if a["text"] is not None]
        all_images = [s["image"] for s in item["question"] + item["answer"] if s["image"]]
        if len(images) > 4:
            skipped.add(item["id"])
        elif texts != all_texts or images != all_images:
            truncated.add(item["id"])
    assert used == on_disk
    assert {v["id"] for v in limits["skipped"]} == skipped
    assert {v["id"] for v in limits["truncated"]} == truncated
    assert skipped and truncated  # the sample has 5-6 image ReMI items and long answers
    more_than_3 = {
        i["id"] for i in items if sum(1 for s in i["question"] + i["answer"] if s["image"]) > 3
    }
    assert set(limits["more_than_3_images"]) == more_than_3


def test_scorer_view_counts_what_mmie_drops():
    def seg(text, image=None):
        return {"text": text, "image": image}

    one_q = {"id": "SA_x", "question": [seg("q", "images/a.jpg")]}
    full = {**one_q, "answer": [seg("1", "images/b.jpg"), seg("2", "images/c.jpg"), seg("3")]}
    view = scorer_view(full)
    assert view["truncated"] and view["answer_text_segments_dropped"] == 1
    assert view["images_scored"] == 3 and not view["skipped"]
    fits = {**one_q, "answer": [seg("1", "images/b.jpg"), seg("2")]}
    assert not scorer_view(fits)["truncated"]
    five = {"id": "MSR_x", "question": [seg(None, f"images/{i}.png") for i in range(5)]}
    five["answer"] = [seg("42")]
    view = scorer_view(five)
    assert view["skipped"] and not view["truncated"]  # the answer text is read before the stop


def test_markdown_escaping():
    assert md("a|b") == "a\\|b"
    assert "<" not in md(HOSTILE) and ">" not in md(HOSTILE)
    assert md("load_images *x*\nnext") == "load\\_images \\*x\\* next"


def test_shard_plan_respects_rows_and_bytes():
    groups = plan([10] * 250, max_shard_bytes=10**9)
    assert [len(g) for g in groups[0]] == [100, 100, 50] and len(groups) == 1
    shards = plan([40] * 10, max_shard_bytes=100)
    assert [[len(g) for g in s] for s in shards] == [[2]] * 5
    assert plan([500, 10], max_shard_bytes=100) == [[[0]], [[1]]]  # an oversized row alone


@pytest.fixture(scope="module")
def annotated(rich_build, tmp_path_factory):
    records = sorted(read_records(str(rich_build)), key=lambda r: r["id"])
    by_cat: dict[str, list[str]] = {}
    for r in records:
        by_cat.setdefault(r["category"], []).append(r["id"])
    reject, fix_ok, fix_bad = "SA_vist_test_990001", "PBL_wikihow_90000101_0", by_cat["MSR"][0]
    accepted = by_cat["MSR"][1:6] + by_cat["IF"][:3]
    lines = [
        json.dumps({"id": reject, "verdict": "reject", "mean_score": 1.5, "n_responses": 2}),
        json.dumps(
            {
                "id": fix_ok,
                "verdict": "fix",
                "corrections": {"subfield": "General Education"},
                "mean_score": 4.0,
                "n_responses": 2,
            }
        ),
        json.dumps(
            {"id": fix_bad, "verdict": "fix", "corrections": {"subfield": "No Such Subfield"}}
        ),
        *(
            json.dumps({"id": i, "verdict": "accept", "mean_score": 5, "n_responses": 3})
            for i in accepted
        ),
        "{not json",
        json.dumps({"id": by_cat["SA"][1], "verdict": "maybe"}),
        json.dumps({"id": "SA_vist_test_nope", "verdict": "accept"}),
    ]
    agreement = pull_agreement(f"two annotators per item {HOSTILE}")
    ann = write_annotations(tmp_path_factory.mktemp("ann") / "ann", lines, agreement)
    out = tmp_path_factory.mktemp("annotated") / "release"
    argv = [
        "--build", str(rich_build), "--annotations", str(ann), "--require-annotation",
        "--output", str(out), "--version", "0.2.0",
    ]  # fmt: skip
    assert publish_main(argv) == 0
    expected = {"reject": reject, "fix_ok": fix_ok, "fix_bad": fix_bad, "accepted": accepted}
    expected["fix_ok_before"] = next(r["subfield"] for r in records if r["id"] == fix_ok)
    return out, expected, len(records)


def test_annotation_decisions_are_applied(annotated, tmp_path):
    out, exp, n_build = annotated
    rows = load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path))["test"]
    assert rows.features == FEATURES
    published = {r["id"]: r for r in rows.remove_columns(["question", "answer", "gt_answer"])}
    assert set(published) == {exp["fix_ok"], *exp["accepted"]}
    fixed = published[exp["fix_ok"]]
    assert fixed["subfield"] == "General Education"
    assert fixed["annotation"] == {
        "verdict": "fix",
        "mean_score": 4.0,
        "n_responses": 2,
        "corrected": ["subfield"],
        "edits": [
            {
                "target": "subfield",
                "before": json.dumps(exp["fix_ok_before"]),
                "after": '"General Education"',
                "by": [],  # the decision line names no annotators
            }
        ],
    }
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    reasons = Counter((d["stage"], d["reason"]) for d in dropped)
    assert reasons[("apply_annotations", "annotation_rejected")] == 1
    assert reasons[("apply_annotations", "correction_invalid")] == 1
    assert reasons[("read_annotations", "malformed_decision")] == 2
    assert reasons[("read_annotations", "unknown_id")] == 1
    record_drops = [d for d in dropped if d["stage"] != "read_annotations"]
    assert len(record_drops) + len(published) == n_build  # every build record is accounted for
    assert {d["id"] for d in record_drops if d["reason"] == "correction_invalid"} == {
        exp["fix_bad"]
    }
    card = (out / "README.md").read_text()
    assert "with a corrected field or subfield" in card and "| verdict | nominal |" in card
    assert "<script>" not in card.split("```json")[0]  # protocol text is escaped
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["publish"]["annotations_sha256"]) == {"decisions.jsonl", "agreement.json"}


def test_targets_select_deterministically_and_shards_split(rich_build, tmp_path):
    targets = tmp_path / "targets.yaml"
    targets.write_text("IF:\n  '*': 2\nMSR:\n  Mathematics: 3\n  Physics: 100\n")

    def run(name: str, seed: int) -> Path:
        out = tmp_path / name
        argv = [
            "--build", str(rich_build), "--targets", str(targets), "--seed", str(seed),
            "--max-shard-mb", "0.15", "--output", str(out), "--version", "1.0.0",
        ]  # fmt: skip
        assert publish_main(argv) == 0
        return out

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    shards = sorted(os.listdir(a / "data"))
    assert len(shards) > 1
    assert shards == [f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for name in shards:
        meta = pq.ParquetFile(a / "data" / name).metadata
        assert all(meta.row_group(i).num_rows <= 100 for i in range(meta.num_row_groups))
        assert (a / "data" / name).read_bytes() == (b / "data" / name).read_bytes()
    rows = load_dataset("parquet", data_dir=str(a / "data"), cache_dir=str(tmp_path / "hf"))
    rows = rows["test"].remove_columns(["question", "answer", "gt_answer"])
    cells = Counter(zip(rows["category"], rows["field"]))
    build = Counter((r["category"], r["field"]) for r in read_records(str(rich_build)))
    for (cat, fld), n in build.items():
        want = {"IF": min(n, 2)}.get(cat, n)
        if (cat, fld) == ("MSR", "Mathematics"):
            want = 3
        assert cells[(cat, fld)] == want, (cat, fld)
    ids_a = set(rows["id"])
    ids_c = {json.loads(x)["id"] for x in (c / "dropped.jsonl").read_text().splitlines()}
    assert ids_a & ids_c  # another seed drops some of the records seed 0 kept
    card = (a / "README.md").read_text()
    assert "### Stratified selection" in card and "| MSR | Physics | 100 |" in card


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def test_report_renders_in_headless_chromium(annotated, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_system_deps.sh")
    out = annotated[0]
    report = out / "report"
    names = set(os.listdir(report))
    assert {"index.html", "counts_vs_mmie.png", "clip_scores.png", "dedupe_clusters.png",
            "drops.png", "agreement.png"} <= names  # fmt: skip
    url = (report / "index.html").as_uri()
    shot = tmp_path / "shot.png"
    _chromium(["--window-size=1200,2400", f"--screenshot={shot}", url], tmp_path / "p1")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2400)
    gray = image.convert("L")
    dark = sum(1 for v in gray.getdata() if v < 200)
    assert dark > 0.02 * 1200 * 2400, "the page rendered (nearly) blank"
    assert len(image.getcolors(maxcolors=1 << 20)) > 50  # plots, not a flat page
    dom = _chromium(["--dump-dom", url], tmp_path / "p2").stdout
    assert "pwned" not in dom.split("</title>")[0]  # no injected script ran
    assert "&lt;script&gt;" in dom and "<script>" not in dom


def test_release_of_rich_build_reports_clip_and_dedupe(annotated):
    card = (annotated[0] / "README.md").read_text()
    assert "scored with ViT-B-32/test-checkpoint" in card
    assert "Dedupe settings (stats.json)" in card and '"phash_distance": 5' in card
    assert '"leakage"' not in card  # long lists stay out of the card


def test_unwritable_inputs_fail_with_instructions(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["--build", str(empty), "--output", str(tmp_path / "r"), "--version", "1.0.0"]
    assert publish_main(argv) == 2
    assert "run `mmloom build" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_annotations_folder_without_decisions_is_refused(sample_build, tmp_path, capsys):
    (tmp_path / "ann").mkdir()
    argv = [
        "--build", str(sample_build), "--annotations", str(tmp_path / "ann"),
        "--output", str(tmp_path / "r"), "--version", "1.0.0",
    ]  # fmt: skip
    assert publish_main(argv) == 2
    assert "mmloom annotate pull" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "ann")
    assert os.listdir(tmp_path) == []
