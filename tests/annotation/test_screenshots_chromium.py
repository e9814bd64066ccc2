"""The README's screenshots, regenerated: one item per category in Argilla's real UI
(headless /usr/bin/chromium), each a readable PNG well under 300 KB. Nothing is compared
pixel by pixel; ``make screenshots`` writes the same pictures into docs/screenshots."""

from __future__ import annotations

import uuid

from PIL import Image

from tools.screenshots import CATEGORIES, MAX_BYTES, WIDTH, take_screenshots


def test_one_screenshot_per_category(argilla_server, sample_build, tmp_path):
    annotator = argilla_server.create_annotator(f"shots-{uuid.uuid4().hex[:6]}")
    shots = take_screenshots(
        argilla_server.url, argilla_server.api_key, annotator, sample_build,
        tmp_path / "shots", argilla_server.workspace, tmp_path / "images",
    )  # fmt: skip
    assert sorted(shots) == sorted(CATEGORIES)
    for cat, path in shots.items():
        assert path == tmp_path / "shots" / f"{cat.lower()}.png"
        assert 10_000 < path.stat().st_size <= MAX_BYTES
        with Image.open(path) as image:
            assert image.format == "PNG" and 500 <= image.width <= WIDTH
            colours = image.convert("RGB").getcolors(maxcolors=100_000)
            assert colours is None or len(colours) > 16  # a page, not a blank frame
