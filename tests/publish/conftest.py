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
