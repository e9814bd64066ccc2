"""Memory, speed and disk of ``mmloom build`` and ``publish`` at N items vs a plain Python loop.

For each N (default 2,000, 8,000 and 20,000) it writes a corpus in all five source formats
(``bench/scale_corpus.py``): N items in MMIE's mix, 25% SA (VIST stories, 5 photos each),
57% PBL (wikiHow methods, 3-8 step photos each), 18% MSR (half MathVista, one image each;
half ReMI parquet rows with 2-6 embedded images), plus 5% of N IF items (COCO) on top. Every
picture is a distinct photo-sized JPEG (default 1280x960, ~270 KB) and every text is distinct,
so no dedupe stage drops an item. Then it measures, each run in its own process tree:

1. the plain loop: one Python process doing the build's per-item work with the same
   functions (read each source with its pure parse functions, ``restructure``, fetch, check
   and pHash each image, sha256, ``ImageStore.put``, rewrite the segments' references,
   ``validate_record``, write Parquet with ``RECORD_SCHEMA``), on the first
   ``--loop-max`` items (default 4,000) in the same mix;
2. ``mmloom build --no-clip`` with ``--direct_num_workers 2 --direct_running_mode
   multi_processing`` (then its output is deleted);
3. ``mmloom build --no-clip`` on the DirectRunner in-process (the default mode);
4. ``mmloom publish --version 0.0.0`` of build 3 (then both are deleted). When the disk
   would not hold the release, the corpus is deleted first (publish reads only the build)
   and made again for the next N.

Per run: wall time, items/s (items = records read by the build; for the loop, items it
processed), CPU seconds of the process tree (user + system of every reaped process) and items
per CPU-second (on a shared machine the CPU-time ratio moves far less than the wall-time one),
peak RSS of the whole process tree (``/proc`` polled every 0.2 s, the RSS of the
process and all its descendants summed; PSS beside it, which counts pages shared by forked
workers once) and the bytes of the output folder it wrote. It prints a table per N, the
ratio ``build in-process / plain loop`` (items/s), the memory goals (build peak RSS at the
largest N <= 3 GB; largest-N / smallest-N build RSS <= 1.5; publish peak RSS <= 2 GB) as
PASS/MISS, machine facts, and one JSON line with every figure (also ``--json-out FILE``).
The corpus grows in place from one N to the next (item k is the same at any N), so
generating the pictures costs once for the largest N (~96,000 pictures at N = 20,000).
The build's own dropped counts (stats.json) are printed: any drop is a regression of the
corpus or of the build.

    python bench/scale.py                                   # N = 2,000, 8,000, 20,000
    python bench/scale.py --n 200 --width 640 --height 480  # a quick check
    python bench/scale.py --n 2000 --skip-mp --only-build --keep /data/scale
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from bench.scale_corpus import (
    Corpus,
    ImageSpec,
    Mix,
    folder_bytes,
    generate,
)

REPO = Path(__file__).resolve().parent.parent
GB = 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_S = 0.2
GOAL_BUILD_RSS = 3e9  # the goals are in GB (10^9 bytes)
GOAL_RSS_GROWTH = 1.5
GOAL_PUBLISH_RSS = 2e9
# pictures per item in the corpus, and of them the ones a record uses (VIST: 1 + 3 of 5;
# wikiHow: step 1 + 3 of 3-8 steps; ReMI: all, 3.15 on average)
PICTURES = {"vist": (5, 4), "wikihow": (5.5, 3.83), "mathvista": (1, 1), "remi": (3.15, 3.15)}
PICTURES["coco"] = (1, 1)
GOAL_RATIO = 0.8
MP_FLAGS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


# ------------------------------------------------------------------------------- /proc


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc/<pid>/stat of every live process."""
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])  # comm may hold spaces and ')'
        out.setdefault(ppid, []).append(int(name))
    return out


def tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process; (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        pss = rss
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


class TreeSampler:
    """Polls the process tree under ``pid`` every ``POLL_S`` seconds; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree(self.pid)
            sizes = [rss_pss(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(s[0] for s in sizes))
            self.peak_pss = max(self.peak_pss, sum(s[1] for s in sizes))
            self.peak_procs = max(self.peak_procs, len(pids))
            self._stop.wait(POLL_S)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    label: str
    wall_s: float
    items: int
    peak_rss: int
    peak_pss: int
    processes: int
    disk_bytes: int
    detail: dict[str, Any] = field(default_factory=dict)
    cpu_s: float = 0.0  # user + system seconds of the whole (reaped) process tree

    @property
    def rate(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_rate(self) -> float:
        """Items per CPU-second: on a shared machine this ratio moves far less than wall
        time does, since waiting for a core costs wall time but no CPU time."""
        return self.items / self.cpu_s if self.cpu_s else 0.0


def measured(label: str, cmd: list[str], log: Path) -> tuple[float, TreeSampler]:
    """Run ``cmd`` (cwd = the repository) with its output in ``log``; raise on failure."""
    print(f"  {label}: {' '.join(cmd[1:])}", flush=True)
    with open(log, "wb") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid) as sampler:
            rc = proc.wait()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # children's CPU time counts once they are reaped: the command's own and that of
        # every worker it waited for
        sampler.cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if rc != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"{label} failed (exit {rc}); log {log}:\n{tail}")
    return wall, sampler


# ------------------------------------------------------------------------------- plain loop


def _items(name: str, options: dict[str, Any], limit: int):
    """The first ``limit`` units of one source (items, or RecordErrors for rejected units),
    read by the source's own reader hooks (``list_files``, ``iter_units``) without Beam."""
    from sources import get_source

    reader = get_source(name).reader(options)
    reader.setup()

    def units():
        for path in reader.files:
            yield from reader.iter_units(path)

    return itertools.islice(units(), limit)


def plain_loop(config: str, out: str, quota: dict[str, int]) -> dict[str, Any]:
    """The build's per-item work as one loop; returns counts (items, written, dropped)."""

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.config import load_config
    from pipelines.images import ImageLimits, load_images, localize_paths
    from schemas.errors import RecordError
    from schemas.parquet import RECORD_SCHEMA, to_row
    from schemas.store import ImageStore
    from schemas.validation import validate_record
    from sources import get_source

    cfg = load_config(config, no_clip=True)
    limits = ImageLimits.from_config(cfg.images, cfg.limits)
    exempt = set(limits.exempt_sources)
    store = ImageStore(out)
    os.makedirs(os.path.join(out, "records"), exist_ok=True)
    writer = pq.ParquetWriter(os.path.join(out, "records", "records.parquet"), RECORD_SCHEMA)
    rows: list[dict[str, Any]] = []
    counts = {"items": 0, "written": 0, "dropped": 0, "images": 0}

    for name, options in cfg.sources.items():
        source = get_source(name)
        lim = limits.exempt() if name in exempt else limits
        for item in _items(name, options, quota.get(name, 0)):
            counts["items"] += 1
            if isinstance(item, RecordError):
                counts["dropped"] += 1
                continue
            try:
                # the build's own function: fetch, check, pHash, sha256, store, reference
                record = load_images(source.restructure(item, options), lim, store=store)
                record = localize_paths(record, cfg.base_dir)
            except Exception:
                counts["dropped"] += 1
                continue
            if validate_record(record):
                counts["dropped"] += 1
                continue
            counts["images"] += len(record["images"])
            rows.append(to_row(record))
            if len(rows) >= 100:
                writer.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))
                counts["written"] += len(rows)
                rows = []
    if rows:
        writer.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))
        counts["written"] += len(rows)
    writer.close()
    return counts


# ------------------------------------------------------------------------------- one N


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def build_stats(out: Path) -> dict[str, Any]:
    stats = json.loads((out / "stats.json").read_text())
    per = {
        name: {"read": s["read"], "written": s["written"], "dropped": s["dropped"]}
        for name, s in stats["sources"].items()
    }
    return {"totals": stats["totals"], "sources": per, "reconciled": stats.get("reconciled")}


def run_n(args: argparse.Namespace, n: int, work: Path, last: bool) -> dict[str, Any]:
    spec = ImageSpec(args.width, args.height, args.quality)
    corpus_dir = work / "corpus"
    print(f"N = {n:,}: corpus in {corpus_dir}", flush=True)
    corpus: Corpus = generate(corpus_dir, n, spec, processes=args.gen_processes)
    print(
        f"  corpus: {corpus.images_made:,} new pictures in {corpus.seconds:.0f} s "
        f"({corpus.rate():.0f}/s); {corpus.images_total:,} pictures, "
        f"{corpus.corpus_bytes / GB:.2f} GiB",
        flush=True,
    )
    runs: list[Run] = []
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    python = sys.executable

    # 1. the plain loop, on a subset in the same mix
    if not args.only_build and not args.no_loop:
        quota = asdict(Mix(**corpus.mix).scaled(args.loop_max))
        out, result = work / f"loop-{n}", work / f"loop-{n}.json"
        remove(out)
        cmd = [python, str(Path(__file__).resolve()), "--_loop", corpus.config, str(out)]
        cmd += [json.dumps(quota), str(result)]
        wall, s = measured("plain loop", cmd, logs / f"loop-{n}.log")
        counts = json.loads(result.read_text())
        runs.append(
            Run(
                "plain loop",
                wall,
                counts["items"],
                s.peak_rss,
                s.peak_pss,
                s.peak_procs,
                folder_bytes(out),
                {"quota": quota, **counts},
                s.cpu_s,
            )
        )
        if not args.keep:
            remove(out)

    def build(label: str, out: Path, extra: list[str]) -> Run:
        remove(out)
        cmd = [python, "-m", "pipelines.cli", "build", "--config", corpus.config]
        cmd += ["--output", str(out), "--no-clip", *extra]
        wall, s = measured(label, cmd, logs / f"{out.name}-{n}.log")
        stats = build_stats(out)
        read = stats["totals"]["read"]
        run = Run(label, wall, read, s.peak_rss, s.peak_pss, s.peak_procs, folder_bytes(out))
        run.detail = stats
        run.cpu_s = s.cpu_s
        runs.append(run)
        return run

    # 2. two processes, 3. in-process; publish reads the in-process build (or, without one,
    # the 2-process build)
    in_process = "in-process" in args.build_modes
    if "2-processes" in args.build_modes and not args.skip_mp:
        build("build, 2 processes", work / f"build-mp-{n}", MP_FLAGS)
        if not args.keep and in_process:
            remove(work / f"build-mp-{n}")
    build_dir = work / f"build-{n}" if in_process else work / f"build-mp-{n}"
    if in_process:
        build("build, in-process", build_dir, [])

    # 4. publish the in-process build
    dropped_corpus = False
    if not args.only_build:
        store_bytes = folder_bytes(build_dir)
        need = int(2.2 * store_bytes) + GB
        if free_bytes(work) < need and not args.keep:
            print(f"  disk: {free_bytes(work) / GB:.1f} GiB free < ~{need / GB:.1f} GiB for")
            print("  the release: deleting the corpus first (publish reads only the build)")
            remove(corpus_dir)
            dropped_corpus = True
        release = work / f"release-{n}"
        remove(release)
        cmd = [python, "-m", "pipelines.cli", "publish", "--build", str(build_dir)]
        cmd += ["--output", str(release), "--version", "0.0.0"]
        wall, s = measured("publish", cmd, logs / f"publish-{n}.log")
        published = build_stats(build_dir)["totals"]["written"]
        runs.append(
            Run(
                "publish",
                wall,
                published,
                s.peak_rss,
                s.peak_pss,
                s.peak_procs,
                folder_bytes(release),
                cpu_s=s.cpu_s,
            )
        )
        if not args.keep:
            remove(release)
    if not args.keep:
        remove(build_dir)
        if last and not dropped_corpus:
            remove(corpus_dir)
    return {
        "n": n,
        "corpus": asdict(corpus),
        "runs": [asdict(r) | {"rate": r.rate, "cpu_rate": r.cpu_rate} for r in runs],
    }


# ------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    versions = {}
    for mod in ("apache_beam", "pyarrow", "PIL", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "?"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem / GB, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_avg": os.getloadavg(),
        **versions,
    }


def mib(b: int) -> str:
    return f"{b / 2**20:,.0f} MiB"


def print_n(result: dict[str, Any]) -> None:
    c = result["corpus"]
    mix = ", ".join(f"{k} {v:,}" for k, v in c["mix"].items())
    pics = ", ".join(f"{k} {v:,}" for k, v in c["images"].items())
    total_pics = sum(c["images"].values())
    print(f"\n== N = {result['n']:,} (SA+PBL+MSR; IF on top) ==")
    print(f"items:    {mix} ({sum(c['mix'].values()):,} in all)")
    print(f"pictures: {pics} ({total_pics:,}; {c['width']}x{c['height']} JPEG q{c['quality']})")
    avg = c["corpus_bytes"] / max(total_pics, 1)
    print(
        f"corpus:   {c['corpus_bytes'] / GB:.2f} GiB (~{avg / 1000:.0f} KB per picture); "
        f"made {c['images_made']:,} pictures in {c['seconds']:.0f} s "
        f"({c['images_made'] / max(c['seconds'], 1e-9):.0f}/s)"
    )
    print(
        f"{'run':<22} {'wall':>8} {'items':>7} {'items/s':>8} {'CPU s':>8} {'items/CPU-s':>11} "
        f"{'peak RSS':>10} {'peak PSS':>10} {'procs':>5} {'disk written':>13}"
    )
    for r in result["runs"]:
        print(
            f"{r['label']:<22} {r['wall_s']:7.1f}s {r['items']:7,} {r['rate']:8.1f} "
            f"{r.get('cpu_s', 0):8.1f} {r.get('cpu_rate', 0):11.2f} "
            f"{mib(r['peak_rss']):>10} {mib(r['peak_pss']):>10} {r['processes']:>5} "
            f"{mib(r['disk_bytes']):>13}"
        )
    by = {r["label"]: r for r in result["runs"]}
    loop = by.get("plain loop")
    if loop:
        d = loop["detail"]
        quota = ", ".join(f"{k} {v}" for k, v in d["quota"].items())
        print(
            f"plain loop ran on {d['items']:,} items ({quota}): "
            f"wrote {d['written']:,}, dropped {d['dropped']}, {d['images']:,} images"
        )
    for label in ("build, in-process", "build, 2 processes"):
        if label in by:
            t = by[label]["detail"]["totals"]
            dropped = sum(t["dropped"].values()) if isinstance(t["dropped"], dict) else t["dropped"]
            reasons = t["dropped"] if dropped else "-"
            print(
                f"{label}: read {t['read']:,}, written {t['written']:,}, dropped {dropped} "
                f"{reasons}"
            )
    if loop:
        for label in ("build, in-process", "build, 2 processes"):
            if label in by:
                ratio = by[label]["rate"] / loop["rate"] if loop["rate"] else 0.0
                name = label.replace(",", "")
                print(f"{name} / plain loop = {ratio:.2f}× (items/s)")
                if loop.get("cpu_rate") and by[label].get("cpu_rate"):
                    cpu = by[label]["cpu_rate"] / loop["cpu_rate"]
                    print(f"{name} / plain loop = {cpu:.2f}× (items per CPU-second)")


def goals(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def run(res: dict[str, Any], label: str) -> dict[str, Any] | None:
        return next((r for r in res["runs"] if r["label"] == label), None)

    lo, hi = results[0], results[-1]
    out = []

    def add(name: str, value: float, goal: float, unit: str, ok: bool) -> None:
        out.append({"goal": name, "value": value, "target": goal, "unit": unit, "pass": ok})

    for label in ("build, in-process", "build, 2 processes"):
        r = run(hi, label)
        if r:
            add(
                f"{label} peak RSS at N={hi['n']:,} <= 3 GB",
                r["peak_rss"] / 1e9,
                3.0,
                "GB",
                r["peak_rss"] <= GOAL_BUILD_RSS,
            )
    for label in ("build, in-process", "build, 2 processes"):
        a, c = run(lo, label), run(hi, label)
        if a and c and lo is not hi:
            ratio = c["peak_rss"] / a["peak_rss"]
            add(
                f"{label} peak RSS N={hi['n']:,} / N={lo['n']:,} <= 1.5",
                ratio,
                GOAL_RSS_GROWTH,
                "×",
                ratio <= GOAL_RSS_GROWTH,
            )
    b = run(hi, "build, in-process")
    p = run(hi, "publish")
    if p:
        add(
            f"publish peak RSS at N={hi['n']:,} <= 2 GB",
            p["peak_rss"] / 1e9,
            2.0,
            "GB",
            p["peak_rss"] <= GOAL_PUBLISH_RSS,
        )
    loop = run(hi, "plain loop")
    if loop and b and loop["rate"]:
        ratio = b["rate"] / loop["rate"]
        add(
            f"build in-process / plain loop at N={hi['n']:,} >= 0.8",
            ratio,
            GOAL_RATIO,
            "×",
            ratio >= GOAL_RATIO,
        )
    return out


def disk_estimate(n: int, spec: ImageSpec) -> dict[str, float]:
    """Rough disk needs in GB at N: corpus, build (image store), release (shards + MMIE
    export: about two copies of the store)."""
    from bench.scale_corpus import make_photo

    avg = sum(len(make_photo(f"calibrate/{i}", spec)) for i in range(4)) / 4
    mix = asdict(Mix.for_n(n))
    corpus = sum(mix[k] * PICTURES[k][0] for k in mix) * avg / 1e9
    store = sum(mix[k] * PICTURES[k][1] for k in mix) * avg / 1e9
    return {"picture_kb": avg / 1e3, "corpus": corpus, "build": store, "release": 2.2 * store}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_loop":  # the plain loop's own process (see plain_loop)
        config, out, quota, result = argv[1:5]
        counts = plain_loop(config, out, json.loads(quota))
        Path(result).write_text(json.dumps(counts))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2_000, 8_000, 20_000])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=960)
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality of the pictures")
    ap.add_argument("--loop-max", type=int, default=4_000, help="items the plain loop runs on")
    ap.add_argument("--gen-processes", type=int, default=2)
    ap.add_argument("--skip-mp", action="store_true", help="no 2-process build")
    ap.add_argument(
        "--build-modes",
        nargs="+",
        choices=("in-process", "2-processes"),
        default=["in-process", "2-processes"],
        help="which builds to run (publish reads the in-process one, else the 2-process one)",
    )
    ap.add_argument("--no-loop", action="store_true", help="no plain-loop baseline")
    ap.add_argument("--only-build", action="store_true", help="no plain loop, no publish")
    ap.add_argument("--keep", help="work in this folder and keep corpus and outputs")
    ap.add_argument("--work-dir", help="work in this folder (deleted at the end unless --keep)")
    ap.add_argument("--json-out", help="also write the JSON line to this file")
    args = ap.parse_args(argv)
    ns = sorted(set(args.n))
    if args.keep:
        work = Path(args.keep)
    elif args.work_dir:
        work = Path(args.work_dir)
    else:
        work = Path(tempfile.mkdtemp(prefix="mmloom-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, beam {info['apache_beam']}, {info['date']}"
    )
    free = free_bytes(work) / 1e9
    print(f"work folder: {work} ({free:.0f} GB free)", flush=True)
    est = disk_estimate(ns[-1], ImageSpec(args.width, args.height, args.quality))
    peak = est["corpus"] + est["build"] + (0 if args.only_build else est["release"])
    if not args.keep:  # the corpus is deleted before publish when the disk is short
        peak = max(est["corpus"] + est["build"], est["build"] + est["release"])
    print(
        f"disk at N={ns[-1]:,} (~{est['picture_kb']:.0f} KB per picture): corpus "
        f"~{est['corpus']:.1f} GB, build ~{est['build']:.1f} GB, release ~{est['release']:.1f}"
        f" GB; peak ~{peak:.1f} GB of {free:.0f} GB free"
    )
    if peak > free:
        print("WARNING: the disk looks too small for the largest N; expect a failure")
    results = []
    try:
        for i, n in enumerate(ns):
            results.append(run_n(args, n, work, last=i == len(ns) - 1))
    finally:
        if not args.keep:
            remove(work)
    print(f"\nmachine: {json.dumps(info)}")
    for res in results:
        print_n(res)
    checked = goals(results)
    if checked:
        print("\ngoals:")
        for g in checked:
            mark = "PASS" if g["pass"] else "MISS"
            print(f"  {mark}  {g['goal']}: {g['value']:.2f} {g['unit']}")
    line = json.dumps(
        {
            "bench": "scale",
            "machine": info,
            "args": vars(args),
            "results": results,
            "goals": checked,
        }
    )
    print(line)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")


if __name__ == "__main__":
    main()
