"""Screenshots of one annotation item per category (SA, PBL, MSR, IF) in Argilla's real UI.

    make screenshots   # python -m tools.screenshots [--build out/sample] [--output DIR]

:func:`take_screenshots` pushes one record per category of a build to a running Argilla
(images from a loopback image server it starts and stops), signs in to the web UI as an
annotator in headless Chromium (Debian's ``/usr/bin/chromium``, driven by playwright-core;
nothing is downloaded), opens each category's dataset, waits until the item's text and
images are shown, and saves a downscaled, palette-compressed PNG per category
(``sa.png``, ``pbl.png``, ``msr.png``, ``if.png``; each well under 300 KB). The command
line starts a throw-away local Argilla for this (``mmloom annotate serve`` machinery, in a
temporary home on a free port), builds the bundled sample without CLIP when ``--build`` has
no build, and stops everything afterwards. ``tests/annotation/test_screenshots_chromium.py``
runs :func:`take_screenshots` against the test session's server into a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CATEGORIES = ("SA", "PBL", "MSR", "IF")
VIEWPORT = {"width": 1440, "height": 1000}
WIDTH = 1100  # saved width in pixels
MAX_BYTES = 300_000
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per category, deterministic: the first by id with images (for MSR a ReMI
    item if any, whose sentences are split around images)."""
    best: dict[str, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r["id"]):
        cat = r["category"]
        if cat not in CATEGORIES or not r.get("images"):
            continue
        remi = (r.get("provenance") or {}).get("source") == "remi"
        have = best.get(cat)
        if have is None or (cat == "MSR" and remi and "remi" not in have["id"]):
            best[cat] = r
    return [best[c] for c in CATEGORIES if c in best]


def compress_png(data: bytes, width: int = WIDTH, max_bytes: int = MAX_BYTES) -> bytes:
    """``data`` (a PNG) scaled to ``width`` and saved with a 256-colour palette; smaller
    widths are tried until it fits in ``max_bytes``."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    while True:
        w = min(width, image.width)
        scaled = image.resize((w, round(image.height * w / image.width)), Image.LANCZOS)
        buf = io.BytesIO()
        scaled.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            buf, format="PNG", optimize=True
        )
        if buf.tell() <= max_bytes or width < 500:
            return buf.getvalue()
        width = int(width * 0.85)


def take_screenshots(
    server_url: str,
    api_key: str,
    annotator: dict[str, str],
    build: Path,
    output: Path,
    workspace: str,
    image_root: Path,
) -> dict[str, Path]:
    """Push one record per category of ``build`` and screenshot each in the UI.

    Args:
        server_url: a running Argilla (URL).
        api_key: an owner or admin key (creates the datasets).
        annotator: ``username`` and ``password`` of an annotator of ``workspace``.
        build: an ``mmloom build`` output folder.
        output: folder for ``<category>.png`` (created).
        workspace: where the round goes.
        image_root: folder for the images the loopback image server serves (stopped after).

    Returns:
        category -> PNG path.

    Raises:
        RuntimeError: the build has none of the categories; playwright's errors when the
            page never shows the item.
    """
    from playwright import sync_api

    from annotation import images as image_store
    from annotation.client import connect, find_dataset
    from annotation.push import push
    from annotation.rubric import load_rubric
    from annotation.settings import dataset_name
    from schemas.buildio import read_records
    from schemas.store import ImageStore

    chosen = pick_records(read_records(str(build)))
    if not chosen:
        raise RuntimeError(f"{build} has no records of {', '.join(CATEGORIES)} with images")
    output.mkdir(parents=True, exist_ok=True)
    image_store.export_images(chosen, image_root, ImageStore(str(build)).get)
    base = image_store.start_image_server(image_root, _free_port())
    shots = {}
    try:
        client = connect(server_url, api_key)
        name = f"screens-{uuid.uuid4().hex[:6]}"
        push(
            client, chosen, name, load_rubric(), image_store.url_builder(base), workspace=workspace
        )
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(90_000)
                page.goto(f"{server_url}/sign-in")
                page.fill("input[name=Username]", annotator["username"])
                page.fill("input[name=Password]", annotator["password"])
                page.click("button[type=submit]")
                page.wait_for_url(lambda url: "sign-in" not in url)
                for record in chosen:
                    cat = record["category"]
                    ds = find_dataset(client, dataset_name(name, cat), workspace)
                    page.goto(f"{server_url}/dataset/{ds.id}/annotation-mode")
                    page.frame_locator("iframe").first.get_by_role(
                        "heading", name="Reference answer"
                    ).wait_for()
                    frame = next(
                        f
                        for f in page.frames
                        if f != page.main_frame and "Reference answer" in f.content()
                    )
                    frame.wait_for_function(
                        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
                    )
                    page.wait_for_timeout(500)  # let the layout settle
                    path = output / f"{cat.lower()}.png"
                    path.write_bytes(compress_png(page.screenshot()))
                    shots[cat] = path
            finally:
                browser.close()
    finally:
        image_store.stop_image_server(image_root)
    return shots


def main(argv: list[str] | None = None) -> int:
    """``make screenshots``: a throw-away Argilla, the sample build, four PNGs."""
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__)
    parser.add_argument("--build", type=Path, default=REPO / "out" / "sample")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args(argv)

    from annotation.server import runtime
    from annotation.server.users import Argilla, add_user

    with tempfile.TemporaryDirectory(prefix="mmloom-screens-") as tmp:
        tmp_path = Path(tmp)
        build = args.build
        if not (build / "records").exists():
            from pipelines.cli import main as mmloom

            build = tmp_path / "build"
            config = str(REPO / "configs" / "sample.yaml")
            if mmloom(["build", "--config", config, "--output", str(build), "--no-clip"]) != 0:
                return 1
        key = secrets.token_urlsafe(32)
        os.environ["MMLOOM_IMAGE_REGISTRY"] = str(tmp_path / "image-servers.json")
        home = tmp_path / "argilla"
        info = runtime.serve(
            home, _free_port(), owner_api_key=key, owner_password=secrets.token_urlsafe(16)
        )
        try:
            api = Argilla(info.url, key)
            add_user(api, home, "annotator", runtime.DEFAULT_WORKSPACE)
            password = (home / "passwords" / "annotator.txt").read_text().strip()
            shots = take_screenshots(
                info.url, key, {"username": "annotator", "password": password}, build,
                args.output, runtime.DEFAULT_WORKSPACE, tmp_path / "images",
            )  # fmt: skip
        finally:
            runtime.stop(home, log=lambda *_: None)
    for cat, path in shots.items():
        print(f"{cat}: {path} ({path.stat().st_size // 1000} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
