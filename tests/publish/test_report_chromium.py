"""The release report in headless Chromium: fits a 1280 px window, no plot taller than 2,000 px,
agreement as a table of alpha with intervals (no raw JSON), thresholds and model warnings."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pipelines.publish.cli import main as publish_main
from pipelines.publish.report import MAX_PLOT_PX
from schemas.buildio import read_records, write_manifest
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.publish.conftest import HOSTILE, pull_agreement, write_annotations

pytestmark = pytest.mark.slow

WINDOW = {"width": 1280, "height": 900}
THRESHOLDS = {"SA": 0.15, "PBL": 0.12, "MSR": 0.1, "IF": 0.2}


@pytest.fixture(scope="module")
def report_release(rich_build, tmp_path_factory) -> tuple[Path, dict]:
    """A release of the rich sample build with CLIP thresholds in stats.json and an
    agreement.json in `mmloom annotate pull`'s shape (hostile protocol text)."""
    base = tmp_path_factory.mktemp("report-chromium")
    build = base / "build"
    shutil.copytree(rich_build, build)
    stats = json.loads((build / "stats.json").read_text())
    stats["clip"] = {"thresholds": THRESHOLDS}
    (build / "stats.json").write_text(json.dumps(stats, indent=2))
    write_manifest(str(build))  # the stats changed: a new manifest, as a build would write
    ids = sorted(r["id"] for r in read_records(str(build)))[:12]
    lines = [json.dumps({"id": i, "verdict": "accept", "n_responses": 2}) for i in ids]
    agreement = pull_agreement(f"two annotators per item {HOSTILE}")
    ann = write_annotations(base / "ann", lines, agreement)
    out = base / "release"
    argv = [
        "--build", str(build), "--annotations", str(ann),
        "--output", str(out), "--version", "0.4.0",
    ]  # fmt: skip
    assert publish_main(argv) == 0
    return out, agreement


def test_report_fits_the_window_in_headless_chromium(report_release, tmp_path):
    from playwright import sync_api as playwright_api

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_system_deps.sh")
    out, agreement = report_release
    url = (out / "report" / "index.html").as_uri()
    shot = tmp_path / "report.png"
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport=WINDOW,
        )
        try:
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function("[...document.images].every(i => i.complete)")
            page.screenshot(path=str(shot), full_page=True)
            dom = page.evaluate(
                """() => ({
                    scrollWidth: document.documentElement.scrollWidth,
                    bodyScrollWidth: document.body.scrollWidth,
                    innerWidth: window.innerWidth,
                    title: document.title,
                    images: [...document.images].map(i => ({
                        src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight})),
                    pre: document.querySelectorAll('pre').length,
                    text: document.body.innerText,
                })"""
            )
        finally:
            context.close()
    assert dom["innerWidth"] == WINDOW["width"]
    assert dom["scrollWidth"] <= dom["innerWidth"], dom["scrollWidth"]
    assert dom["bodyScrollWidth"] <= dom["innerWidth"], dom["bodyScrollWidth"]
    assert "pwned" not in dom["title"]  # no injected script ran
    srcs = {i["src"] for i in dom["images"]}
    assert srcs == {
        "counts_vs_mmie.png",
        "clip_scores.png",
        "dedupe_clusters.png",
        "drops.png",
        "agreement.png",
        "audit_heuristics.png",
    }
    for image in dom["images"]:
        assert 0 < image["h"] <= MAX_PLOT_PX, image
        assert image["w"] > 0, image
    assert dom["pre"] == 0  # no raw JSON on the page
    assert '"resamples"' not in dom["text"] and "1000 resamples" in dom["text"]
    assert "SA 0.15" in dom["text"] and "untrained" not in dom["text"]
    assert "MMIE has no IF category" in dom["text"]
    # the agreement table: one row per question and scope, alpha and interval as printed
    row = agreement["questions"]["verdict"]
    lo, hi = row["alpha_ci95"]
    assert f"verdict\tall items\tnominal\t{row['alpha']:.3f}\t[{lo:.3f}, {hi:.3f}]" in dom["text"]
    n_rows = sum(1 + len(q["by_category"]) for q in agreement["questions"].values())
    questions = agreement["questions"]
    # (rows of the agreement table's 7 columns: the human round's verdict table starts with a
    # "verdict" cell too)
    table_rows = [
        t
        for t in dom["text"].splitlines()
        if t.split("\t")[0] in questions and len(t.split("\t")) == 7
    ]
    assert len(table_rows) == n_rows
    image = Image.open(shot)
    assert image.width == WINDOW["width"]
    assert image.height > WINDOW["height"]  # the whole page, not only the first screen
    gray = image.convert("L")
    dark = sum(1 for v in gray.getdata() if v < 200)
    assert dark > 0.01 * image.width * image.height, "the page rendered (nearly) blank"


def test_sample_report_warns_about_the_tiny_model_and_says_what_is_empty(release):
    html = (release / "report" / "index.html").read_text()
    names = set(os.listdir(release / "report"))
    # the sample scores with mmloom-tiny-clip: a warning beside the histograms
    assert '<p class="warn">' in html and "mmloom-tiny-clip" in html
    assert "The build set no minimum score per category" in html
    # the sample's dedupe section has an empty cluster_sizes: a sentence, not an empty chart
    assert "dedupe_clusters.png" not in names and "No duplicate clusters" in html
    assert "agreement.png" not in names and "No annotation agreement was given" in html
    for name in names - {"index.html"}:
        assert Image.open(release / "report" / name).height <= MAX_PLOT_PX


def test_hostile_agreement_names_neither_break_the_plot_nor_reach_the_page(tmp_path):
    from pipelines.publish.report import _agreement_section

    agreement = pull_agreement(HOSTILE)
    agreement["questions"][f"q $x {HOSTILE}"] = dict(agreement["questions"]["verdict"])
    by_cat = agreement["questions"]["verdict"]["by_category"]
    by_cat["$IF"] = by_cat["IF"]  # a lone "$" would start matplotlib mathtext
    written: list[str] = []
    page = _agreement_section(agreement, str(tmp_path), lambda n: written.append(n) or "")
    assert written == ["agreement.png"] and (tmp_path / "agreement.png").is_file()
    assert "<script>" not in page and "&lt;script&gt;" in page
