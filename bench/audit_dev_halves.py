"""The model-free validity audit on the real development halves (README, "Validity audit").

Writes the halves of ``../shared/samples`` in their source layouts with stand-in images
(``tools/make_dev_halves.py``: the 500 MathVista testmini problems, pids 1-500; the 1,010
VIST-Challenge stories; the 1,509 AREL reference stories), builds each with
``mmloom build --no-clip`` (the real ``AuditAnswerPatterns`` stage, default ``audit`` config),
and prints the ``audit`` section of each build's stats.json: answer positions against
uniform, the blind heuristics' accuracies, answer-in-question counts, the most-frequent-answer
baseline, repeated answers and the items flagged per code. Stand-in images do not matter: the
audit reads no pixels.

    .venv/bin/python bench/audit_dev_halves.py [--keep DIR] [--json FILE]

No timing is claimed here; the figures are counts over real items.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.cli import main as mmloom  # noqa: E402
from tools import make_dev_halves as dev  # noqa: E402

VIST = (
    "  vist:\n    sis: {0}/sis/*.story-in-sequence.json\n    images: {0}/images\n"
    "    text_field: text\n"
)


def most_repeated(out: Path, min_words: int, top: int = 3) -> list[tuple[int, str]]:
    """The open-ended answer texts (whole answers and answer segments, as the audit counts
    them) held by the most items, whatever the threshold: how far below it the halves stay."""
    import pyarrow.parquet as pq

    from pipelines.dedupe.text import normalise

    counts: Counter = Counter()
    for path in sorted((out / "records").glob("*.parquet")):
        table = pq.read_table(path, columns=["answer", "question_format"]).to_pylist()
        for answer in [r["answer"] for r in table if r["question_format"] == "open_ended"]:
            segments = [s["text"] for s in answer if s["text"]]
            keys = {normalise(t) for t in segments}
            if len(segments) > 1:
                keys.add(normalise("\n".join(segments)))
            counts.update(k for k in keys if len(k.split()) >= min_words)
    return [(n, t) for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def build(tmp: Path, name: str, sources: str) -> dict[str, Any]:
    config = tmp / f"{name}.yaml"
    config.write_text(f"version: 1\nname: {name}\nsources:\n{sources}", "utf-8")
    out = tmp / f"out-{name}"
    if mmloom(["build", "--config", str(config), "--output", str(out), "--no-clip"]) != 0:
        raise SystemExit(f"the {name} build failed")
    stats = json.loads((out / "stats.json").read_text("utf-8"))
    min_words = stats["audit"]["settings"]["repeated_answer_min_words"]
    stats["most_repeated"] = most_repeated(out, min_words)
    return stats


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def describe(name: str, stats: dict[str, Any]) -> list[str]:
    audit = stats["audit"]
    written = sum(s["written"] for s in stats["sources"].values())
    lines = [
        f"## {name}: {written} records written, {audit['tests']} tests (Holm, alpha "
        f"{audit['settings']['alpha']})"
    ]
    for cell in audit["multiple_choice"]["cells"]:
        h = cell["heuristics"]
        line = (
            f"MC {cell['cell']}: {cell['items']} items, positions {cell['position_counts']}; "
            f"chance {pct(h['chance'])}, always-longest {pct(h['always_longest'])}, "
            f"always-shortest {pct(h['always_shortest'])}, most-frequent-position (LOO) "
            f"{pct(h['most_frequent_position'])}; answer in question "
            f"{cell['answer_in_question']}/{cell['answer_in_question_eligible']}"
        )
        if cell["status"] == "tested":
            t = cell["position_test"]
            p = "-" if t["p"] is None else f"{t['p']:.3g}"
            line += (
                f"; position chi2 {t['chi2']:.1f} df {t['df']} p {p} (strata {t['strata']}) "
                f"bias {t['bias']}"
            )
            for k in ("longest", "shortest"):
                s = cell[k]
                line += (
                    f"; {k} {s['hits']}/{s['eligible']} = {pct(s['rate'])} vs "
                    f"{pct(s['chance'])} p {s['p']:.3g} bias {s['bias']}"
                )
        else:
            line += "; too few items to test"
        lines.append(line)
    for source, s in audit["multiple_choice"]["by_source"].items():
        h = s["heuristics"]
        lines.append(
            f"MC {source} overall: {s['items']} items, positions {s['position_counts']}, chance "
            f"{pct(h.get('chance'))}, always-longest {pct(h.get('always_longest'))}, "
            f"always-shortest {pct(h.get('always_shortest'))}, most-frequent-position "
            f"{pct(h.get('most_frequent_position'))}, answer in question "
            f"{s['answer_in_question']}"
        )
    for source, s in audit["open_ended"]["by_source"].items():
        lines.append(
            f"OE {source} overall: {s['items']} items in {s['cells']} cells, most-frequent-answer "
            f"baseline (LOO) {pct(s['frequent_answer_baseline'])}, answer in question "
            f"{s['answer_in_question']}"
        )
    biased = [c for c in audit["open_ended"]["cells"] if c["frequent_answer_bias"]]
    tested = [c for c in audit["open_ended"]["cells"] if c["status"] == "tested"]
    oe = audit["open_ended"]
    lines.append(
        f"OE cells tested {len(tested)} (too few items: {oe['untested_cells']} cells, "
        f"{oe['untested_items']} items), with a frequent-answer bias {len(biased)}:"
    )
    for c in biased:
        lines.append(
            f"  {c['cell']}: {c['items']} items, baseline {pct(c['baseline_accuracy'])}, "
            f"answer {c['most_frequent_answer']!r} x{c['most_frequent_count']}"
        )
    rep = audit["repeated_answers"]
    lines.append(f"repeated answer texts: {rep['texts']} texts in {rep['items']} item-uses")
    for t in rep["top"][:10]:
        lines.append(f"  {t['items']:>4}  {t['text']!r}")
    lines.append(
        "most repeated answer texts, any count: "
        + ", ".join(f"{t!r} x{n}" for n, t in stats["most_repeated"])
    )
    lines.append(
        f"flagged items: {audit['flagged']['items']}, by code {audit['flagged']['by_code']}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--json", type=Path, help="write every build's audit section here")
    args = parser.parse_args(argv)
    if not dev.SHARED.is_dir():
        print(f"no development halves at {dev.SHARED}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        dev.write_mathvista(tmp / "mathvista")
        dev.write_vist(tmp / "vist-challenge", dev.challenge_stories(), dev.CHALLENGE_FIRST_ID)
        dev.write_vist(tmp / "vist-arel", dev.arel_stories(), dev.AREL_FIRST_ID)
        results = {
            "mathvista testmini pids 1-500": build(
                tmp, "mathvista", "  mathvista:\n    root: mathvista\n"
            ),
            "VIST challenge (1,010 stories)": build(
                tmp, "challenge", VIST.format("vist-challenge")
            ),
            "VIST AREL (1,509 stories)": build(tmp, "arel", VIST.format("vist-arel")),
        }
    print(f"# audit of the development halves ({platform.node()}, {platform.machine()})")
    for name, stats in results.items():
        print("\n".join(describe(name, stats)))
    if args.json:
        args.json.write_text(
            json.dumps({k: v["audit"] for k, v in results.items()}, indent=1, sort_keys=True),
            "utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
