"""``report/index.html``: the release's plots (PNG, matplotlib Agg) and tables, self-contained.

Plots: counts against MMIE's published distribution, CLIP score histograms per category, dedupe
cluster sizes (when stats.json has them), drops per stage and reason, annotation agreement
(when given). All text is HTML-escaped; PNGs are written without timestamps, so the same
inputs give the same bytes with the same matplotlib.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipelines.publish.summary import MMIE_CATEGORIES, MMIE_FIELDS, MMIE_TOTAL

_PNG_META = {"Software": None}
_OURS, _THEIRS = "#3b6ea5", "#c8c8c8"


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata=_PNG_META)
    plt.close(fig)


def _counts_plot(summary: dict[str, Any], path: str) -> None:
    total = summary["total"] or 1
    cats = list(dict.fromkeys([*MMIE_CATEGORIES, *summary["categories"]]))
    ours = [100 * summary["categories"].get(c, 0) / total for c in cats]
    theirs = [100 * MMIE_CATEGORIES.get(c, 0) / MMIE_TOTAL for c in cats]
    pbl = [f for (c, f) in MMIE_FIELDS if c == "PBL"]
    pbl_total = summary["categories"].get("PBL", 0) or 1
    pbl_ours = [100 * summary["fields"].get(f"PBL/{f}", 0) / pbl_total for f in pbl]
    pbl_theirs = [100 * MMIE_FIELDS[("PBL", f)] / MMIE_CATEGORIES["PBL"] for f in pbl]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, labels, a, b, title in (
        (axes[0], cats, ours, theirs, "Share per category (%)"),
        (axes[1], pbl, pbl_ours, pbl_theirs, "PBL: share per field (%)"),
    ):
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], a, 0.4, label="this release", color=_OURS)
        ax.bar([i + 0.2 for i in x], b, 0.4, label="MMIE (published)", color=_THEIRS)
        ax.set_xticks(list(x), labels, rotation=30, ha="right")
        ax.set_title(title)
        ax.legend()
    _save(fig, path)


def _clip_plot(scores: dict[str, list[float]], path: str) -> None:
    cats = list(scores)
    fig, axes = plt.subplots(1, len(cats), figsize=(3.5 * len(cats), 3.2), squeeze=False)
    for ax, cat in zip(axes[0], cats, strict=True):
        ax.hist(scores[cat], bins=20, color=_OURS)
        ax.set_title(f"{cat} (n={len(scores[cat])} pairs)")
        ax.set_xlabel("CLIP cosine similarity")
    _save(fig, path)


def cluster_sizes(dedupe: Any, prefix: str = "") -> dict[str, dict[int, int]]:
    """Every ``*cluster_sizes`` entry of stats.json's dedupe section as ``{size: clusters}``.

    Accepts ``{"2": 10, "3": 1}`` mappings and plain lists of sizes.
    """
    found: dict[str, dict[int, int]] = {}
    if not isinstance(dedupe, dict):
        return found
    for key, value in sorted(dedupe.items()):
        name = f"{prefix}{key}"
        if key.endswith("cluster_sizes"):
            if isinstance(value, dict):
                found[name] = {int(k): int(v) for k, v in value.items()}
            elif isinstance(value, list):
                hist: dict[int, int] = {}
                for size in value:
                    hist[int(size)] = hist.get(int(size), 0) + 1
                found[name] = hist
        elif isinstance(value, dict):
            found.update(cluster_sizes(value, f"{name}."))
    return found


def _cluster_plot(series: dict[str, dict[int, int]], path: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(series), 1)
    for i, (name, hist) in enumerate(series.items()):
        sizes = sorted(hist)
        ax.bar([s + i * width for s in sizes], [hist[s] for s in sizes], width, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("cluster size (images or records)")
    ax.set_ylabel("clusters")
    ax.legend()
    _save(fig, path)


def _bar_plot(labels: list[str], values: list[float], title: str, path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color=_OURS)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_title(title)
    _save(fig, path)


def numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every number in a JSON value, keyed by its dotted path (for the agreement plot)."""
    out: list[tuple[str, float]] = []
    if isinstance(obj, bool):
        return out
    if isinstance(obj, int | float):
        return [(prefix or "value", float(obj))]
    if isinstance(obj, dict):
        for k in sorted(obj):
            out += numbers(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += numbers(v, f"{prefix}[{i}]")
    return out


def _table(header: list[str], rows: list[list[Any]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc('' if c is None else str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px}
th{background:#eef}img{max-width:100%;border:1px solid #ddd}pre{background:#f6f6f6;padding:8px}"""


def write_report(
    summary: dict[str, Any], stats: dict[str, Any], version: str, out_dir: str
) -> list[str]:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the file names written."""
    os.makedirs(out_dir, exist_ok=True)
    esc = html.escape
    written: list[str] = []
    sections: list[str] = []

    def plot(name: str) -> str:
        written.append(name)
        return f'<img src="{name}" alt="{esc(name)}">'

    _counts_plot(summary, os.path.join(out_dir, "counts_vs_mmie.png"))
    cat_rows = [[c, n, MMIE_CATEGORIES.get(c, "-")] for c, n in summary["categories"].items()] + [
        ["total", summary["total"], MMIE_TOTAL]
    ]
    sections.append(
        "<h2>Counts against MMIE's published distribution</h2>"
        + plot("counts_vs_mmie.png")
        + _table(["category", "this release", "MMIE"], cat_rows)
        + _table(["category / field", "items"], [[k, v] for k, v in summary["fields"].items()])
    )
    clip = summary["clip"]
    if clip["scores"]:
        _clip_plot(clip["scores"], os.path.join(out_dir, "clip_scores.png"))
        body = plot("clip_scores.png") + f"<p>Models: {esc(', '.join(clip['models']))}</p>"
    else:
        reasons = "; ".join(f"{k}: {v}" for k, v in clip["not_scored"].items())
        body = f"<p>Not scored ({esc(reasons)}).</p>"
    sections.append("<h2>CLIP image-text scores per category</h2>" + body)
    series = cluster_sizes(stats.get("dedupe"))
    if series:
        _cluster_plot(series, os.path.join(out_dir, "dedupe_clusters.png"))
        body = plot("dedupe_clusters.png")
    else:
        body = "<p>stats.json records no dedupe cluster sizes for this build.</p>"
    sections.append("<h2>Dedupe cluster sizes</h2>" + body)
    drops = [
        (f"build: {d['stage']} / {d['reason']}", d["count"]) for d in summary["build"]["drops"]
    ]
    drops += [
        (f"publish: {d['stage']} / {d['reason']}", d["count"]) for d in summary["publish_drops"]
    ]
    if drops:
        _bar_plot(
            [d[0] for d in drops],
            [d[1] for d in drops],
            "Drops per stage and reason",
            os.path.join(out_dir, "drops.png"),
        )
        body = plot("drops.png") + _table(["stage / reason", "count"], [list(d) for d in drops])
    else:
        body = "<p>Nothing was dropped.</p>"
    sections.append("<h2>Drops per stage and reason</h2>" + body)
    agreement = summary["annotation"]["agreement"]
    if agreement is not None:
        figures = numbers(agreement)
        body = ""
        if figures:
            _bar_plot(
                [f[0] for f in figures],
                [f[1] for f in figures],
                "Annotation agreement",
                os.path.join(out_dir, "agreement.png"),
            )
            body += plot("agreement.png")
        body += (
            "<pre>"
            + esc(json.dumps(agreement, ensure_ascii=False, indent=2, sort_keys=True))
            + "</pre>"
        )
    else:
        body = "<p>No annotation agreement was given for this release.</p>"
    sections.append("<h2>Annotation agreement</h2>" + body)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(str(summary['build']['name']))} {esc(version)} report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Release {esc(version)}: {summary['total']} items</h1>"
        + "".join(sections)
        + "</body></html>\n"
    )
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
    return ["index.html", *written]
