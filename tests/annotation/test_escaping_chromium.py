"""Hostile source text in Argilla's real UI (headless /usr/bin/chromium): shown, never run.

A record whose question holds ``<script>`` and ``<img onerror=…>`` (and a ``</script>`` that
would end the ``<script>`` in which Argilla embeds the record JSON inside the custom field's
iframe) is pushed to the session's real Argilla; an annotator signs in and opens it. The
text must be visible as text, the record's image must load from the loopback image server,
and the payloads' marker must stay unset in every frame. A control run of the same payload
without escaping shows that the marker check does catch execution.
"""

from __future__ import annotations

import hashlib
import io
import socket
import uuid

import pytest
from PIL import Image
from playwright import sync_api as playwright_api

from annotation.client import connect, find_dataset
from annotation.images import export_images, start_image_server, stop_image_server, url_builder
from annotation.push import push
from annotation.render import render_record
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from tests.annotation.conftest import sign_in_and_open
from tests.conftest import CHROMIUM, CHROMIUM_ARGS

SCRIPT = "<script>window.top.__pwned = 'script'; alert(1)</script>"
IMG = "<img src=x onerror=window.top.__pwned=2>"
HOSTILE = f"Look: {SCRIPT} and {IMG} end."
UNSET = "() => [window, window.top].every(w => w.__pwned === undefined)"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def image_base(tmp_path):
    data = _png()
    sha = hashlib.sha256(data).hexdigest()
    export_images(
        [{"images": [{"path": f"images/{sha}.png", "sha256": sha}]}], tmp_path, lambda _: data
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield start_image_server(tmp_path, port), f"images/{sha}.png"
    stop_image_server(tmp_path)


def _hostile_record(image_path: str) -> dict:
    return {
        "id": f"SA_hostile_{uuid.uuid4().hex[:8]}",
        "category": "SA",
        "field": "Literature",
        "subfield": "Everyday Life",
        "question_format": "open_ended",
        "question": [
            {"text": HOSTILE, "image": None},
            {"text": "A blue card.", "image": image_path},
        ],
        "answer": [{"text": f"Answer {IMG}", "image": None}],
        "options": None,
        "instruction": None,
        "unit": None,
        "provenance": {"source": "vist"},
        "scores": {"clip": {"scored": False, "min_score": None}},
    }


def test_hostile_text_is_shown_not_run(argilla_server, image_base, tmp_path):
    base, image_path = image_base
    record = _hostile_record(image_path)
    client = connect(argilla_server.url, argilla_server.api_key)
    round_name = f"xss-{uuid.uuid4().hex[:6]}"
    push(
        client,
        [record],
        round_name,
        load_rubric(),
        url_builder(base),
        workspace=argilla_server.workspace,
    )
    dataset = find_dataset(client, dataset_name(round_name, "SA"), argilla_server.workspace)
    annotator = argilla_server.create_annotator(f"xss-{uuid.uuid4().hex[:6]}")
    dialogs = []
    page = None

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(60_000)
            context.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            # Control: the same payload unescaped does run, so the marker check can fail.
            page = context.new_page()
            page.set_content(f"<div>{HOSTILE}</div>")
            page.wait_for_function("() => window.__pwned !== undefined")
            page.close()
            # Our rendered HTML alone: nothing runs, the image loads.
            page = context.new_page()
            page.set_content(render_record(record, url_builder(base)))
            page.wait_for_function(
                "() => [...document.images].some(i => i.complete && i.naturalWidth === 64)"
            )
            assert page.evaluate(UNSET)
            assert "<script>window.top.__pwned" in page.inner_text("body")
            page.close()
            dialogs.clear()

            # The real Argilla UI, as an annotator.
            page = context.new_page()
            sign_in_and_open(page, argilla_server.url, annotator, dataset.id)
            item = page.frame_locator("iframe").first
            item.get_by_role("heading", name="Reference answer").wait_for()
            frame = next(
                f for f in page.frames if f != page.main_frame and "Reference answer" in f.content()
            )
            frame.wait_for_function(
                "() => [...document.images].some(i => i.complete && i.naturalWidth === 64)"
            )
            text = frame.inner_text("body")
            assert SCRIPT in text and IMG in text and f"Answer {IMG}" in text
            page.wait_for_timeout(1000)  # let any injected handler fire
            assert page.evaluate(UNSET) and frame.evaluate(UNSET)
            assert all(f.evaluate(UNSET) for f in page.frames)
            assert dialogs == []
            # a click on an image opens it full size in a new tab
            src = url_builder(base)(image_path)
            with context.expect_page() as opened:
                frame.click(f'a[href="{src}"] img')
            big = opened.value
            big.wait_for_load_state()
            assert big.url == src
            big.close()
        except Exception:
            if page is not None and not page.is_closed():
                page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()
