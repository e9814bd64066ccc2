"""How long each ``mmloom`` command takes to answer ``--help``, against ``python -c pass``;
with ``--startup``, also how long ``show --summary`` takes on a build and how long a build
(CLIP and ``--no-clip``) takes from its start to its pipeline's first stage.

A command line that makes people wait 20 s for its help is one they stop asking. The
baseline is the interpreter starting and exiting, measured in the same run; each command is
run ``--repeat`` times (default 5) as a fresh process and the median wall time is reported,
with the goal of issue 13: every subcommand under 1.5 s on the 2-core development machine.

    python bench/cli_latency.py [--repeat 5] [--json-out FILE]
    python bench/cli_latency.py --startup [--build DIR] [--baseline-tree ../main] [--repeat 3]

``--startup`` times (median of ``--repeat`` fresh processes):

* ``show DIR --summary`` on a build (``--build``; by default the sample built once here with
  ``--no-clip``);
* a build of ``configs/sample.yaml`` (tiny local CLIP model) and one with ``--no-clip``, from
  the process start to the first progress line (``--progress-every 0.0001``: the line printed
  when the first stage's first element arrives); the process is then stopped.

``--baseline-tree`` runs the same commands in another checkout too (e.g. a ``git worktree`` of
main, made beforehand), interleaved with this one's runs so both see the same machine load,
and prints this/baseline ratios.
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


def until_line(cmd: list[str], cwd: Path, marker: str = "[mmloom ") -> float:
    """Wall seconds from starting ``cmd`` until a stderr line starts with ``marker``; the
    process is then stopped (killed after 5 s). Infinity when it ends without one."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    seconds = float("inf")
    try:
        for line in proc.stderr:
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


def startup(args: argparse.Namespace) -> int:
    """The ``--startup`` measurements (see the module docstring)."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="mmloom-latency-"))
    try:
        build = Path(args.build) if args.build else tmp / "sample"
        if not args.build:
            cmd = [sys.executable, "-m", "pipelines.cli", "build", "--config",
                   "configs/sample.yaml", "--output", str(build), "--no-clip",
                   "--progress-every", "0"]  # fmt: skip
            subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
        trees = {"this": REPO}
        if args.baseline_tree:
            trees["baseline"] = Path(args.baseline_tree).resolve()
        mmloom = [sys.executable, "-m", "pipelines.cli"]

        def build_start(tree: Path, n: str, *flags: str) -> float:
            config = str(tree / "configs" / "sample.yaml")
            out = str(tmp / f"build-{n}")
            cmd = [*mmloom, "build", "--config", config, "--output", out, *flags]
            return until_line([*cmd, "--progress-every", "0.0001"], tree)

        cases = {
            "show --summary": lambda tree, n: timed_in(
                [*mmloom, "show", str(build), "--summary"], tree
            ),
            "build (CLIP) to first stage": lambda tree, n: build_start(tree, n),
            "build --no-clip to first stage": lambda tree, n: build_start(tree, n, "--no-clip"),
        }
        results: dict[str, dict[str, float]] = {}
        for name, run in cases.items():
            times: dict[str, list[float]] = {t: [] for t in trees}
            for i in range(args.repeat):
                for label, tree in trees.items():  # interleaved: both see the same load
                    times[label].append(run(tree, f"{label}{i}{len(results)}"))
            results[name] = {t: statistics.median(v) for t, v in times.items()}
        print(
            f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}, "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}"
        )
        head = f"{'startup (median of ' + str(args.repeat) + ')':<34} {'this s':>8}"
        if "baseline" in trees:
            head += f" {'baseline s':>11} {'this/baseline':>14}"
        print(head)
        for name, r in results.items():
            row = f"{name:<34} {r['this']:8.2f}"
            if "baseline" in r:
                row += f" {r['baseline']:11.2f} {r['this'] / r['baseline']:14.2f}"
            print(row)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def timed_in(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``cmd`` in ``cwd`` (output discarded)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json-out")
    ap.add_argument("--startup", action="store_true", help="show --summary and build start-up")
    ap.add_argument("--build", help="--startup: the build show reads (default: sample, built)")
    ap.add_argument("--baseline-tree", help="--startup: another checkout to compare with")
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
