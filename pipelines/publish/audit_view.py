"""The validity audit in a release: what the card and the report say about it, and its plots.

The figures come from two places: the build's stats.json ``audit`` section (what
``AuditAnswerPatterns`` measured over every record it saw: positions, heuristics, leakage) and
the published records' ``audit.flags`` (how many released items carry each flag). Pure
functions of those, so the card's sentences can be checked against the data.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_CELLS_PLOTTED = 12  # the largest tested multiple-choice cells get a position plot
HEURISTICS = (
    ("chance", "chance (mean 1/k)"),
    ("always_longest", "always the longest option"),
    ("always_shortest", "always the shortest option"),
    ("most_frequent_position", "always the most frequent position (leave-one-out)"),
)


def _flags(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    audit = record.get("audit")
    if isinstance(audit, str):
        audit = json.loads(audit)
    if not isinstance(audit, dict):
        return None
    return audit.get("flags") or []


def audit_summary(records: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, Any]:
    """``{"build": stats.json's audit section or None, "released": {...}}``: the released
    items audited, flagged, and flagged per ``stage/code``."""
    audited = flagged = 0
    by_code: Counter = Counter()
    for r in records:
        flags = _flags(r)
        if flags is None:
            continue
        audited += 1
        flagged += bool(flags)
        by_code.update({f"{f['stage']}/{f['code']}" for f in flags})
    return {
        "build": stats.get("audit"),
        "released": {
            "records": len(records),
            "audited": audited,
            "flagged": flagged,
            "by_code": dict(sorted(by_code.items())),
        },
        "models": {key: _model_scores(records, key) for key in ("blind", "label")},
    }


def _model_scores(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """What a model-based audit stage (``scores.blind``, ``scores.label``) did to the released
    items: how many it scored, with which models, and why it left the others."""
    scored = 0
    models: set[str] = set()
    reasons: Counter = Counter()
    for r in records:
        scores = r.get("scores")
        if isinstance(scores, str):
            scores = json.loads(scores)
        value = (scores or {}).get(key)
        if not isinstance(value, dict):
            continue
        if value.get("scored"):
            scored += 1
            if value.get("model"):
                models.add(str(value["model"]))
        else:
            reasons[str(value.get("reason") or "not stated")] += 1
    return {
        "scored": scored,
        "models": sorted(models),
        "not_scored": dict(sorted(reasons.items())),
        # mmloom's tiny random-weight test models (the sample's): their scores mean nothing
        "untrained": any("tiny" in m.lower() for m in models),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _p(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def audit_tables(view: dict[str, Any]) -> dict[str, Any]:
    """The rows the card and the report show (empty lists when the build ran no audit)."""
    build = view.get("build") or {}
    mc = (build.get("multiple_choice") or {}).get("cells", [])
    oe = (build.get("open_ended") or {}).get("cells", [])
    position_rows, heuristic_rows = [], []
    for c in mc:
        counts = " ".join(f"{k}:{v}" for k, v in c["position_counts"].items())
        test = c.get("position_test") or {}
        position_rows.append(
            [
                c["cell"],
                c["items"],
                counts,
                _p(test.get("p_holm")) if c["status"] == "tested" else c["status"],
                "yes" if test.get("bias") else "no",
            ]
        )
        h = c["heuristics"]
        leaked = f"{c['answer_in_question']}/{c['answer_in_question_eligible']}"
        heuristic_rows.append([c["cell"], c["items"], *(_pct(h[k]) for k, _ in HEURISTICS), leaked])
    by_source = (build.get("open_ended") or {}).get("by_source", {})
    oe_rows = [
        [
            src,
            s["items"],
            s["cells"],
            _pct(s["frequent_answer_baseline"]),
            s["answer_in_question"],
        ]
        for src, s in by_source.items()
    ]
    biased_rows = [
        [c["cell"], c["items"], _pct(c["baseline_accuracy"]), c["most_frequent_answer"]]
        for c in oe
        if c["frequent_answer_bias"]
    ]
    repeated = build.get("repeated_answers") or {}
    flagged = build.get("flagged") or {}
    return {
        "ran": bool(build),
        "settings": build.get("settings") or {},
        "tests": build.get("tests", 0),
        "position_rows": position_rows,
        "heuristic_rows": heuristic_rows,
        "heuristic_names": [name for _, name in HEURISTICS],
        "oe_rows": oe_rows,
        "biased_rows": biased_rows,
        "repeated_rows": [[t["items"], t["text"]] for t in repeated.get("top", [])[:10]],
        "repeated_texts": repeated.get("texts", 0),
        "build_flagged": flagged.get("items", 0),
        "build_by_code": flagged.get("by_code", {}),
        "released": view["released"],
        "models": view.get("models") or {},
        "biased_cells": sum(
            1
            for c in mc
            if c["status"] == "tested"
            and (
                c["position_test"].get("bias")
                or c["longest"].get("bias")
                or c["shortest"].get("bias")
            )
        ),
    }


def position_plot(view: dict[str, Any], path: str) -> bool:
    """Answer-position shares of the largest tested multiple-choice cells against the shares
    uniform positions would give (grey); False (nothing drawn) when no cell was tested."""
    import matplotlib.pyplot as plt

    cells = [
        c
        for c in ((view.get("build") or {}).get("multiple_choice") or {}).get("cells", [])
        if c["status"] == "tested"
    ]
    cells = sorted(cells, key=lambda c: (-c["items"], c["cell"]))[:MAX_CELLS_PLOTTED]
    if not cells:
        return False
    ncols = min(len(cells), 3)
    nrows = -(-len(cells) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows + 0.3), squeeze=False)
    for ax in axes.flat[len(cells) :]:
        ax.set_visible(False)
    for ax, c in zip(axes.flat, cells, strict=False):
        width = max(int(k) for k in c["positions"])
        observed = [0.0] * width
        expected = [0.0] * width
        for k, counts in c["positions"].items():
            n_k = sum(counts)
            for j, o in enumerate(counts):
                observed[j] += o / c["items"]
                expected[j] += n_k / int(k) / c["items"]
        x = range(width)
        ax.bar([i - 0.2 for i in x], observed, 0.4, label="observed", color="#3b6ea5")
        ax.bar([i + 0.2 for i in x], expected, 0.4, label="uniform", color="#c8c8c8")
        ax.set_xticks(list(x), list(LETTERS[:width]))
        test = c["position_test"]
        mark = " (biased)" if test.get("bias") else ""
        ax.set_title(
            f"{c['cell']}\nn={c['items']}, Holm p={_p(test.get('p_holm'))}{mark}", fontsize=9
        )
        ax.set_ylabel("share of items")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


def heuristic_plot(view: dict[str, Any], path: str) -> bool:
    """Blind-heuristic accuracy per source (multiple choice) beside chance, and the
    most-frequent-answer baseline per source (open-ended); False when there is none."""
    import matplotlib.pyplot as plt

    build = view.get("build") or {}
    mc = (build.get("multiple_choice") or {}).get("by_source", {})
    oe = (build.get("open_ended") or {}).get("by_source", {})
    bars = [
        (f"{src}: {name}", s["heuristics"].get(key) or 0.0)
        for src, s in mc.items()
        for key, name in HEURISTICS
    ]
    bars += [
        (f"{src}: most frequent answer (open-ended)", s["frequent_answer_baseline"])
        for src, s in oe.items()
    ]
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(8, min(19.9, 0.35 * len(bars) + 1.2)))
    ax.barh(range(len(bars)), [b[1] for b in bars], color="#3b6ea5")
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy without looking at the image")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


def write_audit_plots(view: dict[str, Any], out_dir: str) -> list[str]:
    """Draw the audit's plots into ``out_dir``; the names of those drawn."""
    drawn = []
    if position_plot(view, os.path.join(out_dir, "audit_positions.png")):
        drawn.append("audit_positions.png")
    if heuristic_plot(view, os.path.join(out_dir, "audit_heuristics.png")):
        drawn.append("audit_heuristics.png")
    return drawn
