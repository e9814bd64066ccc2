"""What the label-suspicion audit costs a build of the bundled sample (the tiny local VLM).

Builds ``configs/sample.yaml`` twice in this process, in alternating order over ``--repeat``
rounds: as it is (the audit off, its default), and with ``audit.label`` enabled on a tiny
random-weight VLM made here by ``tools/make_tiny_vlm.py`` (on the CPU). Prints each build's
seconds, the medians and their ratio, and how many records the audit checked and flagged.
This is the figure behind leaving the stage off in the sample config (README, "Label
suspicion"); a real model on a GPU costs what its inference costs, not this.

    python bench/label_audit_cost.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pipelines.cli import main as mmloom
from schemas.buildio import read_records
from tools.make_tiny_vlm import make_tiny_vlm

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = REPO / "configs" / "sample.yaml"


def configs(work: Path) -> dict[str, Path]:
    """The sample config as it is (sources and CLIP model by absolute path), and with the
    label audit on."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8").replace("../", f"{REPO}/")
    vlm = make_tiny_vlm(work / "vlm")
    off, on = work / "off.yaml", work / "on.yaml"
    off.write_text(text, encoding="utf-8")
    on.write_text(
        f"{text}audit:\n  label:\n    enabled: true\n    model_dir: {vlm}\n    device: cpu\n",
        encoding="utf-8",
    )
    return {"off": off, "on": on}


def build(config: Path, output: Path) -> float:
    started = time.perf_counter()
    if mmloom(["build", "--config", str(config), "--output", str(output), "--overwrite"]) != 0:
        raise SystemExit(f"the build of {config} failed")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmloom-label-bench-") as tmp:
        work = Path(tmp)
        paths = configs(work)
        times: dict[str, list[float]] = {"off": [], "on": []}
        for round_ in range(args.repeat):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for name in order:
                seconds = build(paths[name], work / f"build-{name}")
                times[name].append(seconds)
                print(f"round {round_ + 1}: audit {name}: {seconds:.1f} s", flush=True)
        records = list(read_records(str(work / "build-on")))
        labels = [(r.get("scores") or {}).get("label") or {} for r in records]
        flagged = sum(
            any(f["code"] == "label_suspect" for f in ((r.get("audit") or {}).get("flags") or []))
            for r in records
        )
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()}, {platform.python_version()}",
                    "builds_per_setting": args.repeat,
                    "median_s_audit_off": round(off, 1),
                    "median_s_audit_on": round(on, 1),
                    "ratio_on_over_off": round(on / off, 2),
                    "extra_s": round(on - off, 1),
                    "records": len(records),
                    "checked": sum(1 for lab in labels if lab.get("scored")),
                    "flagged_label_suspect": flagged,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
