"""``report/index.html``: the release's plots (PNG, matplotlib Agg) and tables, self-contained.

Sections: counts against MMIE's published distribution (SA, PBL, MSR only: MMIE has no IF),
CLIP score histograms per category with the build's thresholds (and a warning when the scores
come from the tiny test model), dedupe cluster sizes, drops per stage and reason, the human
round (coverage per category, verdicts, vetoes, edits, and a warning when no decision matched
the build), annotation agreement (a table of alpha with its 95% interval per question,
overall and per category, n/a below two items judged twice, and one interval plot), the
model-free validity audit (answer positions against uniform per cell, blind heuristics'
accuracies, leakage counts, flags: ``pipelines.publish.audit_view``). A
section with nothing to show is a sentence, not an empty plot; counts have integer axes; no
plot is taller than 2,000 px and no raw JSON is shown. The page is the Jinja2 template
``templates/report.html.j2`` (macros in ``templates/report_macros.html.j2``) with autoescape
on, so all text is HTML-escaped; this module draws the plots and computes the tables. PNGs are
written without timestamps, so the same inputs give the same bytes with the same matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from matplotlib.ticker import MaxNLocator

from pipelines.publish.audit_view import audit_tables, write_audit_plots
from pipelines.publish.summary import (
    MMIE_CATEGORIES,
    MMIE_FIELDS,
    MMIE_TOTAL,
    agreement_rows,
    audit_review_table,
    category_order,
    clip_is_untrained,
    clip_thresholds,
    numeric_leaves,
)

_PNG_META = {"Software": None}
_OURS, _THEIRS = "#3b6ea5", "#c8c8c8"
_CAT_COLOURS = {"SA": "#d1495b", "PBL": "#edae49", "MSR": "#00798c", "IF": "#66a182"}
DPI = 100
MAX_PLOT_PX = 2000  # no plot is taller than this (the report's Chromium test checks it)
MAX_BARS = 30  # bars of the drops plot; the table lists every drop reason


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata=_PNG_META)
    plt.close(fig)


def _height(inches: float) -> float:
    return min(inches, (MAX_PLOT_PX - 10) / DPI)


def _mmie_shares(summary: dict[str, Any]) -> list[list[Any]]:
    """Rows ``[category, items, share %, MMIE items, MMIE share %]`` over SA, PBL and MSR:
    MMIE has no IF category, so both shares are of the three categories they share."""
    ours = {c: summary["categories"].get(c, 0) for c in MMIE_CATEGORIES}
    total = sum(ours.values())
    rows = [
        [
            c,
            ours[c],
            round(100 * ours[c] / total, 2) if total else None,
            MMIE_CATEGORIES[c],
            round(100 * MMIE_CATEGORIES[c] / MMIE_TOTAL, 2),
        ]
        for c in MMIE_CATEGORIES
    ]
    rows.append(["SA + PBL + MSR", total, 100.0 if total else None, MMIE_TOTAL, 100.0])
    return rows


def _counts_plot(summary: dict[str, Any], path: str) -> None:
    rows = _mmie_shares(summary)[:-1]
    cats = [r[0] for r in rows]
    ours = [r[2] or 0 for r in rows]
    theirs = [r[4] for r in rows]
    pbl = [f for (c, f) in MMIE_FIELDS if c == "PBL"]
    pbl_total = summary["categories"].get("PBL", 0) or 1
    pbl_ours = [100 * summary["fields"].get(f"PBL/{f}", 0) / pbl_total for f in pbl]
    pbl_theirs = [100 * MMIE_FIELDS[("PBL", f)] / MMIE_CATEGORIES["PBL"] for f in pbl]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, labels, a, b, title in (
        (axes[0], cats, ours, theirs, "Share of SA + PBL + MSR items (%)"),
        (axes[1], pbl, pbl_ours, pbl_theirs, "PBL: share per field (%)"),
    ):
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], a, 0.4, label="this release", color=_OURS)
        ax.bar([i + 0.2 for i in x], b, 0.4, label="MMIE (published)", color=_THEIRS)
        ax.set_xticks(list(x), labels, rotation=30, ha="right")
        ax.set_title(title)
        ax.legend()
    _save(fig, path)


def _clip_plot(
    scores: dict[str, list[float]], thresholds: dict[str, float], untrained: bool, path: str
) -> None:
    cats = sorted(scores, key=category_order)
    ncols = min(len(cats), 2)
    nrows = -(-len(cats) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, _height(3.2 * nrows + 0.4)), squeeze=False)
    for ax in axes.flat[len(cats) :]:
        ax.set_visible(False)
    for ax, cat in zip(axes.flat, cats, strict=False):
        ax.hist(scores[cat], bins=20, color=_OURS)
        ax.set_title(f"{cat} (n={len(scores[cat])} image-text pairs)")
        ax.set_xlabel("CLIP cosine similarity")
        ax.set_ylabel("pairs")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if cat in thresholds:
            ax.axvline(thresholds[cat], color="#c0392b", linestyle="--", linewidth=1.5)
            ax.text(
                thresholds[cat],
                0.97,
                f" min {thresholds[cat]:g}",
                color="#c0392b",
                transform=ax.get_xaxis_transform(),
                va="top",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
        else:
            ax.text(
                0.02,
                0.97,
                "no threshold set",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    if untrained:
        fig.suptitle("Untrained test model: these scores mean nothing", color="#c0392b")
    _save(fig, path)


def cluster_sizes(dedupe: Any, prefix: str = "") -> dict[str, dict[int, int]]:
    """Every non-empty ``*cluster_sizes`` entry of stats.json's dedupe section as
    ``{size: clusters}``.

    Accepts ``{"2": 10, "3": 1}`` mappings and plain lists of sizes; empty ones are left out
    (the report then says so in a sentence).
    """
    found: dict[str, dict[int, int]] = {}
    if not isinstance(dedupe, dict):
        return found
    for key, value in sorted(dedupe.items()):
        name = f"{prefix}{key}"
        if key.endswith("cluster_sizes"):
            hist: dict[int, int] = {}
            if isinstance(value, dict):
                hist = {int(k): int(v) for k, v in value.items() if int(v)}
            elif isinstance(value, list):
                for size in value:
                    hist[int(size)] = hist.get(int(size), 0) + 1
            if hist:
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cluster size (images or records)")
    ax.set_ylabel("clusters (log scale)")
    ax.legend()
    _save(fig, path)


def _bar_plot(labels: list[str], values: list[int], title: str, path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, _height(0.4 * len(labels) + 1.2)))
    ax.barh(range(len(labels)), values, color=_OURS)
    ax.set_yticks(range(len(labels)), labels)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.invert_yaxis()
    ax.set_title(title)
    _save(fig, path)


def _agreement_plot(rows: list[dict[str, Any]], path: str) -> None:
    """One row per question: alpha over all items (black) and per category (coloured), each a
    point with its 95% bootstrap interval."""
    questions = list(dict.fromkeys(r["question"] for r in rows))
    scopes = list(dict.fromkeys(r["scope"] for r in rows))
    step = 0.7 / max(len(scopes), 1)
    fig, ax = plt.subplots(figsize=(9, _height(0.55 * len(questions) + 1.6)))
    lows = [0.0]
    seen: set[str] = set()
    for r in rows:
        if r["alpha"] is None:
            continue
        y = (
            questions.index(r["question"])
            + (scopes.index(r["scope"]) - (len(scopes) - 1) / 2) * step
        )
        colour = "#222" if r["scope"] == "all" else _CAT_COLOURS.get(r["scope"], "#888")
        name = "all items" if r["scope"] == "all" else r["scope"].replace("$", r"\$")
        label = None if r["scope"] in seen else name
        seen.add(r["scope"])
        if r["ci"]:
            lo, hi = r["ci"]
            ax.plot([lo, hi], [y, y], color=colour, linewidth=1.5)
            lows.append(lo)
        ax.plot([r["alpha"]], [y], "o", color=colour, markersize=5, label=label)
        lows.append(r["alpha"])
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.axvline(0.667, color="#999", linewidth=0.8, linestyle=":")
    ax.axvline(0.8, color="#999", linewidth=0.8, linestyle="--")
    ax.set_xlim(max(-1.0, min(lows) - 0.05), 1.02)
    ax.set_yticks(range(len(questions)), [q.replace("$", r"\$") for q in questions])  # no mathtext
    ax.set_ylim(len(questions) - 0.5, -0.5)
    ax.set_xlabel("Krippendorff's alpha with 95% bootstrap interval (dotted 0.667, dashed 0.8)")
    ax.legend(loc="lower left", fontsize=8, ncols=min(len(seen), 5))
    _save(fig, path)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


_ENV = Environment(
    loader=PackageLoader("pipelines.publish", "templates"),
    autoescape=True,  # every value reaching the page is HTML-escaped
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)


def _macros() -> Any:
    return _ENV.get_template("report_macros.html.j2").module


def agreement_view(agreement: Any) -> dict[str, Any]:
    """What the agreement section shows: nothing, the numeric leaves of agreement.json, or per
    question and scope (all items, each category) alpha, its 95% interval and percent
    agreement; ``plotted`` are the rows with an alpha."""
    if agreement is None:
        return {"kind": "none"}
    protocol = agreement.get("protocol") if isinstance(agreement, dict) else None
    view: dict[str, Any] = {"protocol": protocol}
    rows = agreement_rows(agreement)
    if not rows:
        leaves = numeric_leaves(agreement)
        if not leaves:
            return {**view, "kind": "empty"}
        return {**view, "kind": "leaves", "rows": [[k, _fmt(v)] for k, v in leaves]}
    boot = (agreement.get("rubric") or {}).get("bootstrap") or {}
    return {
        **view,
        "kind": "table",
        "bootstrap": {
            "interval": boot.get("interval", "percentile"),
            "resamples": boot.get("resamples", "?"),
            "seed": boot.get("seed", "?"),
        }
        if boot
        else None,
        "plotted": [r for r in rows if r["alpha"] is not None],
        "rows": [
            [
                r["question"],
                "all items" if r["scope"] == "all" else r["scope"],
                r["level"],
                "n/a" if r["alpha"] is None else _fmt(r["alpha"]),
                _interval(r["ci"]),
                _fmt(r["percent"]),
                r["pairable"],
            ]
            for r in rows
        ],
    }


def _agreement_section(agreement: Any, out_dir: str, plot: Callable[[str], str]) -> str:
    """The agreement section's HTML; draws ``agreement.png`` into ``out_dir`` when an alpha
    can be plotted (``plot`` returns the image's markup)."""
    view = agreement_view(agreement)
    markup = ""
    if view.get("plotted"):
        _agreement_plot(view["plotted"], os.path.join(out_dir, "agreement.png"))
        markup = Markup(plot("agreement.png"))
    return _macros().agreement(view, markup)


def _coverage_rows(ann: dict[str, Any]) -> list[list[Any]]:
    keys = ("build", "decided", "vetoed", "published", "judged")
    rows = [[c, *(v[k] for k in keys)] for c, v in ann["coverage"].items()]
    rows.append(["total", *(sum(v[k] for v in ann["coverage"].values()) for k in keys)])
    return rows


def write_report(
    summary: dict[str, Any], stats: dict[str, Any], version: str, out_dir: str
) -> list[str]:
    """Write ``index.html`` (report.html.j2) and its PNGs into ``out_dir``; returns the file
    names written."""
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []

    def plot(name: str) -> str:
        written.append(name)
        return str(_macros().img(name))

    _counts_plot(summary, os.path.join(out_dir, "counts_vs_mmie.png"))
    written.append("counts_vs_mmie.png")
    clip = summary["clip"]
    thresholds = clip_thresholds(clip.get("settings")) if clip["scores"] else {}
    untrained = bool(clip["scores"]) and clip_is_untrained(clip["models"])
    if clip["scores"]:
        _clip_plot(clip["scores"], thresholds, untrained, os.path.join(out_dir, "clip_scores.png"))
        written.append("clip_scores.png")
    dedupe = stats.get("dedupe")
    series = cluster_sizes(dedupe)
    if series:
        _cluster_plot(series, os.path.join(out_dir, "dedupe_clusters.png"))
        written.append("dedupe_clusters.png")
    drops = [
        (f"build: {d['stage']} / {d['reason']}", d["count"]) for d in summary["build"]["drops"]
    ]
    drops += [
        (f"publish: {d['stage']} / {d['reason']}", d["count"]) for d in summary["publish_drops"]
    ]
    if drops:
        shown = sorted(drops, key=lambda d: -d[1])[:MAX_BARS]
        title = "Drops per stage and reason" + (
            f" (the {MAX_BARS} largest of {len(drops)})" if len(drops) > MAX_BARS else ""
        )
        _bar_plot(
            [d[0] for d in shown], [d[1] for d in shown], title, os.path.join(out_dir, "drops.png")
        )
        written.append("drops.png")
    audit_view = summary.get("audit_patterns") or {"build": None, "released": {}}
    audit_plots = write_audit_plots(audit_view, out_dir)
    written += audit_plots
    ann = summary["annotation"]
    agreement_html = _agreement_section(ann["agreement"], out_dir, plot)
    page = _ENV.get_template("report.html.j2").render(
        build_name=str(summary["build"]["name"]),
        version=version,
        total=summary["total"],
        n_if=summary["categories"].get("IF", 0),
        share_rows=[
            [c, n, _fmt(ours, 2), theirs, _fmt(share, 2)]
            for c, n, ours, theirs, share in _mmie_shares(summary)
        ],
        field_rows=list(summary["fields"].items()),
        clip=clip,
        clip_untrained=untrained,
        clip_thresholds=", ".join(f"{k} {v:g}" for k, v in sorted(thresholds.items())),
        not_scored="; ".join(f"{k}: {v}" for k, v in clip["not_scored"].items()),
        dedupe=dedupe,
        dedupe_plot=bool(series),
        drops=drops,
        annotation=ann,
        coverage_rows=_coverage_rows(ann) if ann.get("decisions") is not None else [],
        audit_review_rows=audit_review_table(ann.get("audit_review") or []),
        agreement_html=agreement_html,
        audit=audit_tables(audit_view),
        audit_plots=audit_plots,
    )
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
    return ["index.html", *written]
