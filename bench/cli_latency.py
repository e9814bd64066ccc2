"""How long each ``mmloom`` command takes to answer ``--help``, against ``python -c pass``;
with ``--startup``, also how long ``show --summary`` takes on a build and how long a build
(CLIP and ``--no-clip``) takes from its start to its pipeline's first stage.

A command line that makes people wait 20 s for its help is one they stop asking. The
baseline is the interpreter starting and exiting, measured in the same run; each command is
run ``--repeat`` times (default 5) as a fresh process and the median wall time is reported,
with the goal of issue 13: every subcommand under 1.5 s on the 2-core development machine.

    python bench/cli_latency.py [--repeat 5] [--json-out FILE]
    python bench/cli_latency.py --startup [--baseline-rev main] [--build DIR] [--repeat 5]

``--startup`` times, as fresh processes:

* ``show DIR --summary`` on a build (``--build``; by default the sample built once here with
  ``--no-clip``), from the process start to its first line on stdout;
* a build of ``configs/sample.yaml`` (tiny local CLIP model) and one with ``--no-clip``, from
  the process start to the pipeline's first stage: the first progress line on stderr
  (``--progress-every 0.0001``: the line ``[mmloom H:MM:SS] ReadX: 1 items so far`` printed
  when a source's reader hands on its first item); the process is then stopped.

``--baseline-rev REV`` exports revision REV of this repository (``git archive``, into a
temporary folder; ``--baseline-tree DIR`` takes a checkout instead) and runs the same commands
there, interleaved with this checkout's runs (each repeat runs every case in both, the two
trees in turns first), so both see the same machine load; it prints median [min-max] of
``--repeat`` runs each, and the this/baseline ratio of the medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 1.5
COMMANDS = [
    [],
    ["--version"],
    ["build", "--help"],
    ["show", "--help"],
    ["verify", "--help"],
    ["fetch", "--help"],
    ["publish", "--help"],
    ["annotate", "--help"],
    ["annotate", "serve", "--help"],
    ["annotate", "stop", "--help"],
    ["annotate", "push", "--help"],
    ["annotate", "status", "--help"],
    ["annotate", "pull", "--help"],
    ["annotate", "images", "--help"],
]


def timed(cmd: list[str], repeat: int) -> float:
    """Median wall seconds of ``cmd`` over ``repeat`` fresh processes (output discarded)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def first_line(cmd: list[str], cwd: Path, stream: str, marker: str = "") -> float:
    """Wall seconds from starting ``cmd`` until its ``stream`` (``"stdout"`` or ``"stderr"``)
    prints a line starting with ``marker``; the process is then stopped (killed after 5 s).
    Infinity when it ends without one."""
    t0 = time.perf_counter()
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: subprocess.PIPE}
    proc = subprocess.Popen(cmd, cwd=cwd, text=True, **pipes)
    seconds = float("inf")
    try:
        for line in getattr(proc, stream):
            if line.startswith(marker):
                seconds = time.perf_counter() - t0
                break
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return seconds


def export_rev(rev: str, into: Path) -> Path:
    """A copy of revision ``rev`` of this repository (``git archive``) in ``into``, with this
    checkout's ``out/models`` linked in (the sample config's tiny CLIP model)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    models = REPO / "out" / "models"
    if models.exists():
        (into / "out").mkdir(exist_ok=True)
        (into / "out" / "models").symlink_to(models.resolve())
    return into


def startup(args: argparse.Namespace) -> int:
    """The ``--startup`` measurements (see the module docstring)."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="mmloom-latency-"))
    try:
        load_before = os.getloadavg()[0]
        build = Path(args.build) if args.build else tmp / "sample"
        if not args.build:
            cmd = [sys.executable, "-m", "pipelines.cli", "build", "--config",
                   "configs/sample.yaml", "--output", str(build), "--no-clip",
                   "--progress-every", "0"]  # fmt: skip
            subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
        trees = {"this": REPO}
        if args.baseline_rev:
            trees["baseline"] = export_rev(args.baseline_rev, tmp / "baseline")
        elif args.baseline_tree:
            trees["baseline"] = Path(args.baseline_tree).resolve()
        mmloom = [sys.executable, "-m", "pipelines.cli"]

        def build_start(tree: Path, n: str, *flags: str) -> float:
            config = str(tree / "configs" / "sample.yaml")
            out = str(tmp / f"build-{n}")
            cmd = [*mmloom, "build", "--config", config, "--output", out, *flags]
            return first_line([*cmd, "--progress-every", "0.0001"], tree, "stderr", "[mmloom ")

        cases = {
            "show --summary, first line": lambda tree, n: first_line(
                [*mmloom, "show", str(build), "--summary"], tree, "stdout"
            ),
            "build (tiny CLIP) to first stage": lambda tree, n: build_start(tree, n),
            "build --no-clip to first stage": lambda tree, n: build_start(tree, n, "--no-clip"),
        }
        results: dict[str, dict[str, list[float]]] = {}
        for i in range(args.repeat):  # interleaved: every case and tree sees the same load
            order = list(trees.items())[:: -1 if i % 2 else 1]  # neither always goes first
            for k, (name, run) in enumerate(cases.items()):
                times = results.setdefault(name, {t: [] for t in trees})
                for label, tree in order:
                    times[label].append(run(tree, f"{label}-{i}-{k}"))
        print(
            f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, load {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after, "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}"
        )
        if "baseline" in trees:
            print(f"baseline: {args.baseline_rev or trees['baseline']}")

        def cell(v: list[float]) -> str:
            return f"{statistics.median(v):6.2f} [{min(v):.2f}-{max(v):.2f}]"

        head = f"{'seconds: median [min-max] of ' + str(args.repeat):<34} {'this':>20}"
        if "baseline" in trees:
            head += f" {'baseline':>20} {'this/baseline':>14}"
        print(head)
        for name, r in results.items():
            row = f"{name:<34} {cell(r['this']):>20}"
            if "baseline" in r:
                ratio = statistics.median(r["this"]) / statistics.median(r["baseline"])
                row += f" {cell(r['baseline']):>20} {ratio:14.2f}"
            print(row)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json-out")
    ap.add_argument("--startup", action="store_true", help="show --summary and build start-up")
    ap.add_argument("--build", help="--startup: the build show reads (default: sample, built)")
    ap.add_argument("--baseline-tree", help="--startup: another checkout to compare with")
    ap.add_argument("--baseline-rev", help="--startup: a git revision to compare with (exported)")
    args = ap.parse_args(argv)
    if args.startup:
        return startup(args)

    base = timed([sys.executable, "-c", "pass"], args.repeat)
    rows = []
    for words in COMMANDS:
        seconds = timed([sys.executable, "-m", "pipelines.cli", *words], args.repeat)
        rows.append({"command": " ".join(["mmloom", *words]), "seconds": seconds})
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}, "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}"
    )
    print(f"baseline `python -c pass`: {base:.3f} s (median of {args.repeat})")
    print(f"{'command':<32} {'median s':>9} {'x baseline':>11}  goal <= {GOAL_S} s")
    worst = 0.0
    for row in rows:
        worst = max(worst, row["seconds"])
        verdict = "PASS" if row["seconds"] <= GOAL_S else "MISS"
        print(
            f"{row['command']:<32} {row['seconds']:9.3f} {row['seconds'] / base:10.1f}x  {verdict}"
        )
    print(f"slowest: {worst:.3f} s ({'PASS' if worst <= GOAL_S else 'MISS'} against {GOAL_S} s)")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"baseline_s": base, "rows": rows, "goal_s": GOAL_S}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
