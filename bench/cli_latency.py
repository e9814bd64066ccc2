"""How long each ``mmloom`` command takes to answer ``--help``, against ``python -c pass``.

A command line that makes people wait 20 s for its help is one they stop asking. The
baseline is the interpreter starting and exiting, measured in the same run; each command is
run ``--repeat`` times (default 5) as a fresh process and the median wall time is reported,
with the goal of issue 13: every subcommand under 1.5 s on the 2-core development machine.

    python bench/cli_latency.py [--repeat 5] [--json-out FILE]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)

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
