"""Records per second of ``mmloom build`` vs a plain Python loop doing the same work.

Generates a corpus of N MathVista problems (default 10,000) in the GitHub layout: the 33 real
testmini records of ``sample/mathvista`` repeated under new pids, each with its own image
file (``images/<pid>.jpg``, a distinct generated picture each) and its pid in the question text, so
that the items are distinct for the dedupe stages. Then times:

* ``mmloom build`` on the DirectRunner, in-process (the default);
* ``mmloom build`` on the DirectRunner with ``--direct_num_workers 2
  --direct_running_mode multi_processing``;
* a plain single-process Python loop calling the same functions: read the JSON, make items,
  restructure, load, hash and store the images, validate against the schema, write one
  Parquet file.

Both produce the same records. The build also runs what the loop leaves out: the duplicate-id
shuffle and the dedupe stages (image clusters, frequency rule, duplicate items), so the ratio
is what Beam's machinery plus those stages cost (or gain) on this machine. CLIP is off
(``--no-clip``): scoring is measured by bench/clip_throughput.py.

    python bench/build_throughput.py [--n 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pipelines.cli import main as mmloom
from pipelines.images import load_images
from schemas.parquet import RECORD_SCHEMA, to_row
from schemas.store import ImageStore
from schemas.validation import validate_record
from sources.mathvista import parse
from tools.sample_images import make_image

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample" / "mathvista"


def make_corpus(root: Path, n: int) -> None:
    real = json.loads((SAMPLE / "testmini.json").read_text())
    queries = json.loads((SAMPLE / "query.json").read_text())
    templates = list(real.values())
    (root / "images").mkdir(parents=True)
    problems, query = {}, {}
    for i in range(n):
        pid = str(100_000 + i)
        t = dict(templates[i % len(templates)])
        query[pid] = queries.get(t["pid"], "")
        # distinct items: the dedupe stages would rightly drop repeated pictures and texts
        t["pid"], t["image"] = pid, f"images/{pid}.jpg"
        t["question"] = f"{t['question']} (item {pid})"
        problems[pid] = t
        (root / "images" / f"{pid}.jpg").write_bytes(make_image(f"bench-{pid}", 320, 240))
    (root / "testmini.json").write_text(json.dumps(problems, ensure_ascii=False))
    (root / "query.json").write_text(json.dumps(query, ensure_ascii=False))
    (root / "bench.yaml").write_text(f"version: 1\nsources:\n  mathvista:\n    root: {root}\n")


def plain_loop(root: Path, out: Path) -> int:
    """The same work as the build, as one loop (reader, restructure, images, validate, write)."""
    options = {"root": str(root), "splits": ["testmini"]}
    data = json.loads((root / "testmini.json").read_text())
    queries = json.loads((root / "query.json").read_text())
    rows, dropped = [], 0
    store = ImageStore(str(out))
    for position, (key, raw) in enumerate(data.items()):
        try:
            item = parse.problem_to_item(
                raw,
                key=key,
                position=position,
                source_file=str(root / "testmini.json"),
                splits=("testmini",),
                query=queries.get(key),
                image_root=str(root),
                layout_name="root",
            )
            record = load_images(parse.restructure(item, options), store=store)
        except Exception:
            dropped += 1
            continue
        if validate_record(record):
            dropped += 1
            continue
        rows.append(to_row(record))
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    pq.write_table(table, out / "records.parquet", row_group_size=100)
    return len(rows)


def timed_build(config: Path, out: Path, extra: list[str]) -> float:
    t0 = time.perf_counter()
    args = ["build", "--config", str(config), "--output", str(out), "--no-clip", *extra]
    assert mmloom(args) == 0
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--keep", help="keep the corpus and outputs in this folder")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmloom-bench-"))
    corpus = work / "corpus"
    make_corpus(corpus, args.n)
    try:
        t0 = time.perf_counter()
        n_loop = plain_loop(corpus, work / "loop")
        loop_s = time.perf_counter() - t0

        single_s = timed_build(corpus / "bench.yaml", work / "single", [])
        multi_s = timed_build(
            corpus / "bench.yaml",
            work / "multi",
            ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        )
        stats = json.loads((work / "single" / "stats.json").read_text())
        totals = stats["totals"]
        assert stats["reconciled"] and totals["read"] == n_loop == args.n, (totals, n_loop)
        n_build = totals["read"]  # rates are per record read; a few may be dropped as dups

        py = platform.python_version()
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {py}")
        print(
            f"records: {args.n:,} (MathVista layout, one image each); build wrote "
            f"{totals['written']:,}, dropped {totals['dropped']}"
        )
        for label, n, secs in (
            ("plain Python loop", n_loop, loop_s),
            ("mmloom build, DirectRunner", n_build, single_s),
            ("mmloom build, 2 processes", n_build, multi_s),
        ):
            print(f"{label:<28} {n / secs:8.0f} records/s ({secs:.1f} s)")
        print(
            f"ratio build / loop (records/s): in-process {loop_s / single_s:.2f}, "
            f"2 processes {loop_s / multi_s:.2f}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
