"""Issue 11: whole builds of the real development halves (stand-in images) keep every
distinct item and drop every planted duplicate (``tools/make_dev_halves.py``).

Each build takes about 1-2 minutes on 2 cores (DirectRunner, ``--no-clip``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tools import make_dev_halves as dev

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dev.SHARED.is_dir(), reason="no ../shared/samples development halves"),
]


def build(tmp: Path, name: str, sources: str) -> tuple[dict, list[dict]]:
    config = tmp / f"{name}.yaml"
    config.write_text(f"version: 1\nname: {name}\nsources:\n{sources}", "utf-8")
    out = tmp / f"out-{name}"
    assert main(["build", "--config", str(config), "--output", str(out), "--no-clip"]) == 0
    stats = json.loads((out / "stats.json").read_text("utf-8"))
    dead = [
        json.loads(line)
        for path in sorted((out / "dead_letters").glob("*.jsonl"))
        for line in path.read_text("utf-8").splitlines()
    ]
    assert stats["reconciled"] is True
    # real ids never need make_id's hash suffix (issue 14): they read as in MMIE
    shards = sorted((out / "records").glob("*.parquet"))
    ids = [i for s in shards for i in pq.read_table(s, columns=["id"]).column("id").to_pylist()]
    assert ids and not [i for i in ids if "--" in i]
    return stats, dead


def test_mathvista_dev_half_keeps_all_500_and_drops_the_planted_copies(tmp_path):
    dev.write_mathvista(tmp_path / "mathvista", plant=True)
    stats, dead = build(tmp_path, "mathvista", "  mathvista:\n    root: mathvista\n")
    src = stats["sources"]["mathvista"]
    assert src["read"] == 500 + len(dev.PLANTED)
    assert src["written"] == 500  # every real problem
    by_pid = {d["source_id"]: d for d in dead}
    assert sorted(by_pid) == sorted(dev.PLANTED)
    for pid, (copied, _, _) in dev.PLANTED.items():
        d = by_pid[pid]
        expected = "label_conflict" if pid == dev.CONFLICT_PID else "duplicate_item"
        assert (d["stage"], d["reason"]) == ("dedupe", expected)
        assert f"MSR_mathvista_{copied}" in d["detail"]
    (conflict,) = stats["dedupe"]["label_conflict_list"]
    assert (conflict["kept"], conflict["dropped"]) == ("MSR_mathvista_6", "MSR_mathvista_90006")
    # re-encoded, resized and cropped copies join their original's cluster; nothing else does
    assert stats["dedupe"]["cluster_sizes"] == {"2": 3}


VIST = (
    "  vist:\n    sis: {0}/sis/*.story-in-sequence.json\n    images: {0}/images\n"
    "    text_field: text\n"
)


@pytest.mark.parametrize(
    ("name", "stories", "first_id", "n"),
    [
        ("challenge", dev.challenge_stories, dev.CHALLENGE_FIRST_ID, 1010),
        ("arel", dev.arel_stories, dev.AREL_FIRST_ID, 1509),
    ],
)
def test_vist_dev_half_as_sis_keeps_every_story(tmp_path, name, stories, first_id, n):
    folder = f"vist-{name}"
    all_stories = stories()
    assert len(all_stories) == n
    dev.write_vist(tmp_path / folder, all_stories, first_id)
    stats, dead = build(tmp_path, name, VIST.format(folder))
    assert dead == []
    assert stats["sources"]["vist"]["written"] == n
    rep = stats["dedupe"]
    assert rep["image_clusters"] == 0  # distinct stand-ins never collide
    # stories share photos (and, in AREL, albums and whole sequences), and are all kept
    assert max(int(k) for k in rep["image_use_counts"]) > 1
    assert rep["duplicate_items"] == {} and rep["over_used_images"] == 0
