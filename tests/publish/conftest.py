"""Fixtures for the publish tests: a richer copy of the sample build (``sample_build``,
tests/conftest.py) and releases of both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.publish.cli import main as publish_main
from schemas.buildio import write_manifest

# Hostile text where inputs reach the card and the report (agreement figures are free-form).
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">|"


def _fake_clip(record_id: str, n: int) -> list[float]:
    # deterministic scores in [0.1, 0.4) from the id, so histograms have something to show
    import hashlib

    h = hashlib.sha256(record_id.encode()).digest()
    return [0.1 + (h[i % len(h)] / 255) * 0.3 for i in range(n)]


@pytest.fixture(scope="session")
def rich_build(sample_build, tmp_path_factory) -> Path:
    """The sample build with CLIP scores on every record and a dedupe section in stats.json."""
    out = tmp_path_factory.mktemp("publish-rich") / "build"
    shutil.copytree(sample_build, out)
    for path in sorted((out / "records").glob("*.parquet")):
        table = pq.read_table(path)
        rows = table.to_pylist()
        for row in rows:
            images = [im["path"] for im in row["images"]]
            scores = _fake_clip(row["id"], len(images))
            pairs = [
                {"image": p, "score": s, "text_from": "/question/0/text"}
                for p, s in zip(images, scores)
            ]
            row["scores"] = json.dumps(
                {
                    "clip": {
                        "min_score": min(scores),
                        "model": "ViT-B-32/test-checkpoint",
                        "pairs": pairs,
                        "reason": None,
                        "scored": True,
                    }
                },
                sort_keys=True,
            )
        pq.write_table(type(table).from_pylist(rows, schema=table.schema), path, row_group_size=100)
    stats = json.loads((out / "stats.json").read_text())
    stats["dedupe"] = {
        "phash_distance": 5,
        "max_image_uses": 10,
        "cluster_sizes": {"1": 140, "2": 6, "3": 1},
        "leakage": [{"kept": "a", "dropped": "b"}] * 20,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    write_manifest(str(out))  # the files changed: a new manifest, as a build would write
    return out


@pytest.fixture(scope="session")
def release(sample_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("publish-release") / "release"
    argv = ["--build", str(sample_build), "--output", str(out), "--version", "0.1.0"]
    assert publish_main(argv) == 0
    return out


def write_annotations(folder: Path, lines: list[str], agreement: dict | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decisions.jsonl").write_text("".join(line + "\n" for line in lines))
    if agreement is not None:
        (folder / "agreement.json").write_text(json.dumps(agreement))
    return folder


RUBRIC_QUESTIONS = {  # annotation/rubric.yaml: question -> level (text questions have none)
    "question_clarity": "ordinal",
    "answer_quality": "ordinal",
    "image_relevance": "ordinal",
    "irrelevant_images": "nominal",
    "coherence": "ordinal",
    "subinstructions_answerable": "ordinal",
    "weights_fit": "ordinal",
    "correct_field": "nominal",
    "correct_subfield": "nominal",
    "harmful": "nominal",
    "verdict": "nominal",
}
IF_ONLY = {"subinstructions_answerable", "weights_fit"}


def pull_agreement(protocol: str = "two annotators per item") -> dict:
    """An agreement.json in the shape `mmloom annotate pull` writes (annotation/pull.py):
    every rubric question with alpha and percent agreement and their 95% bootstrap intervals,
    overall and per category, from 1,000 resamples. The figures are made up but consistent
    (each interval holds its alpha); one category question has too few items for an alpha."""
    import hashlib

    def entry(name: str, scope: str, units: int) -> dict:
        h = hashlib.sha256(f"{name}/{scope}".encode()).digest()
        alpha = round(-0.1 + h[0] / 255 * 1.05, 4)
        if (name, scope) == ("weights_fit", "IF"):
            return {"level": RUBRIC_QUESTIONS[name], "alpha": None, "alpha_ci95": None,
                    "percent_agreement": None, "percent_agreement_ci95": None, "units": 1,
                    "pairable_units": 1, "values": 2}  # fmt: skip
        lo, hi = round(alpha - 0.05 - h[1] / 255 * 0.3, 4), round(min(1.0, alpha + 0.1), 4)
        pct = round(0.5 + h[2] / 255 * 0.5, 4)
        return {
            "level": RUBRIC_QUESTIONS[name],
            "alpha": alpha,
            "alpha_ci95": [lo, hi],
            "percent_agreement": pct,
            "percent_agreement_ci95": [round(pct - 0.1, 4), round(min(1.0, pct + 0.05), 4)],
            "units": units,
            "pairable_units": units,
            "values": 2 * units,
        }

    questions = {}
    for name in RUBRIC_QUESTIONS:
        cats = ["IF"] if name in IF_ONLY else ["IF", "MSR", "PBL", "SA"]
        if name == "irrelevant_images":
            cats = ["MSR", "PBL", "SA"]
        q = entry(name, "all", 10 * len(cats))
        q["by_category"] = {c: entry(name, c, 10) for c in cats}
        questions[name] = q
    return {
        "protocol": protocol,
        "rubric": {
            "source": "rubric.yaml",
            "overlap": 2,
            "rule": "majority",
            "min_responses": 2,
            "bootstrap": {"resamples": 1000, "seed": 0, "interval": "percentile 95%"},
        },
        "datasets": {
            "SA": "round1-sa",
            "PBL": "round1-pbl",
            "MSR": "round1-msr",
            "IF": "round1-if",
        },
        "records": {
            "in_argilla": 44,
            "decided": 40,
            "pending": 4,
            "by_category": {"IF": 10, "MSR": 10, "PBL": 10, "SA": 10},
        },
        "verdicts": {"accept": 30, "fix": 6, "reject": 4},
        "corrected": 3,
        "annotators": 3,
        "questions": questions,
        "problems": [],
    }
