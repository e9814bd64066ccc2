"""MB/s of ``mmloom publish`` next to pyarrow writing the same table directly.

Makes a build of N copies of the bundled sample (default 20 copies, about 3,000 records): every
copy gets new ids and its own image bytes (the sample's pictures padded to a realistic size with
incompressible bytes after the end-of-image marker, which decoders ignore, so every image is
distinct and content-addressed apart). Then times, on the same machine in the same run:

* ``publish``: the whole ``mmloom publish`` (read the build, read images from its store,
  write the Parquet shards with ``datasets`` features, the MMIE export, card, report with
  plots, manifest with checksums of every file, atomic rename), in-process;
* ``pyarrow``: ``pq.write_table`` of the very table publish wrote (read back into memory
  first), with the same schema, compression and row-group size.

MB/s is Parquet bytes written per second of wall time (MB = 10^6 bytes). The ratio says what
everything a release adds around the bare Parquet write costs.

    python bench/publish_throughput.py [--copies 20] [--image-kb 60] [--build DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
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
from pipelines.publish.release import PublishOptions, publish
from pipelines.publish.shards import ROWS_PER_GROUP
from schemas.buildio import read_records, write_manifest
from schemas.parquet import RECORD_SCHEMA, to_row
from schemas.store import ImageStore

REPO = Path(__file__).resolve().parent.parent


def make_build(sample: Path, out: Path, copies: int, image_kb: int) -> int:
    """Write ``copies`` renamed copies of ``sample``'s records, each image distinct."""
    (out / "records").mkdir(parents=True)
    shutil.copy(sample / "stats.json", out / "stats.json")
    base = list(read_records(str(sample)))
    source, store = ImageStore(str(sample)), ImageStore(str(out))
    n = 0
    for k in range(copies):
        rows = []
        for record in base:
            rec = json.loads(json.dumps({key: v for key, v in record.items() if key != "images"}))
            rename: dict[str, str] = {}
            images = []
            for im in record["images"]:
                original = source.get(im["path"])
                pad = max(0, image_kb * 1000 - len(original))
                # incompressible padding, like real JPEG entropy-coded data
                data = original + hashlib.shake_256(f"{k}:{im['path']}".encode()).digest(pad)
                sha = hashlib.sha256(data).hexdigest()
                path = f"images/{sha}.{im['path'].rsplit('.', 1)[1]}"
                store.put(path, data)
                rename[im["path"]] = path
                images.append({**im, "sha256": sha, "path": path})
            for key in ("question", "answer", "gt_answer"):
                for seg in rec[key]:
                    if seg["image"]:
                        seg["image"] = rename[seg["image"]]
            rec["images"] = images
            rec["id"] = f"{record['id']}_c{k}"
            rows.append(to_row(rec))
        table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
        pq.write_table(
            table, out / "records" / f"records-{k:05d}-of-{copies:05d}.parquet", row_group_size=100
        )
        n += len(rows)
    # the copies hold ``copies`` times the sample's records: say so, then mark it complete
    stats = json.loads((out / "stats.json").read_text())
    stats["totals"]["written"] = n
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    write_manifest(str(out))
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=20)
    p.add_argument("--image-kb", type=int, default=60, help="pad every image to about this size")
    p.add_argument("--build", help="an existing sample build (else one is built)")
    p.add_argument("--keep", help="keep the work folder here")
    args = p.parse_args(argv)

    work = Path(args.keep or tempfile.mkdtemp(prefix="mmloom-publish-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sample = Path(args.build) if args.build else work / "sample"
    if not args.build:
        cfg = REPO / "configs" / "sample.yaml"
        assert mmloom(["build", "--config", str(cfg), "--output", str(sample), "--overwrite"]) == 0
    build = work / "bench-build"
    shutil.rmtree(build, ignore_errors=True)
    n = make_build(sample, build, args.copies, args.image_kb)

    release = work / "release"
    shutil.rmtree(release, ignore_errors=True)
    t0 = time.perf_counter()
    publish(PublishOptions(build=str(build), output=str(release), version="0.0.1"))
    t_publish = time.perf_counter() - t0
    shards = sorted((release / "data").glob("*.parquet"))
    size = sum(f.stat().st_size for f in shards)

    table = pa.concat_tables(pq.read_table(f) for f in shards)
    direct = work / "direct.parquet"
    t0 = time.perf_counter()
    pq.write_table(
        table, direct, row_group_size=ROWS_PER_GROUP, compression="snappy", write_statistics=False
    )
    t_direct = time.perf_counter() - t0
    direct_size = direct.stat().st_size

    mb = size / 1e6
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"records: {n} ({args.copies} copies of the sample), "
        f"data: {mb:.1f} MB in {len(shards)} shard(s)"
    )
    print(f"publish (whole release):  {t_publish:7.2f} s  {mb / t_publish:8.1f} MB/s")
    print(
        f"pyarrow write_table:      {t_direct:7.2f} s  {direct_size / 1e6 / t_direct:8.1f} MB/s"
        f"  ({direct_size / 1e6:.1f} MB)"
    )
    print(f"ratio publish / pyarrow:  {(mb / t_publish) / (direct_size / 1e6 / t_direct):.3f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
