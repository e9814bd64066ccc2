"""Annotation through Argilla's real web UI in headless Chromium (system /usr/bin/chromium).

An annotator signs in, opens the dataset, sees the record's image (served by a local HTTP
server on 127.0.0.1 and actually decoded by the browser), answers the questions and
submits; the SDK then reads the response back from the server.
"""

from __future__ import annotations

import io
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import argilla as rg
import pytest
from PIL import Image
from playwright import sync_api as playwright_api

from tests.annotation.conftest import sign_in_and_open
from tests.conftest import CHROMIUM, CHROMIUM_ARGS


def _png(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_url():
    """Serve one generated PNG from 127.0.0.1; yield its URL."""
    payload = _png()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/square.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/square.png"
    server.shutdown()


def test_annotator_submits_through_ui(argilla_server, image_url, tmp_path):
    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.api_key)
    annotator = argilla_server.create_annotator(f"ui-{uuid.uuid4().hex[:6]}")
    settings = rg.Settings(
        fields=[rg.TextField("text"), rg.ImageField("image")],
        questions=[
            rg.RatingQuestion("quality", values=[1, 2, 3, 4, 5]),
            rg.LabelQuestion("topic", labels=["cats", "dogs"]),
        ],
    )
    dataset = rg.Dataset(
        name=f"ui-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=client,
    ).create()
    dataset.records.log(
        [rg.Record(id="ui-1", fields={"text": "A red square on white", "image": image_url})]
    )

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            sign_in_and_open(page, argilla_server.url, annotator, dataset.id)

            image = page.locator(f'img[src="{image_url}"]')
            image.wait_for(state="visible")
            page.wait_for_function(
                "src => [...document.images]"
                ".some(i => i.src === src && i.complete && i.naturalWidth === 64)",
                arg=image_url,
            )
            page.get_by_text("A red square on white").first.wait_for()

            page.click("label[for=quality_4]")
            page.click("label[for=topic_cats]")
            with page.expect_response(
                lambda r: "/responses" in r.url and r.request.method != "GET"
            ) as sent:
                page.click("button.button--submit")
            assert sent.value.ok, sent.value.status
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()

    responses = next(iter(dataset.records(with_responses=True))).responses
    quality = responses["quality"]
    topic = responses["topic"]
    assert [(r.value, r.status, str(r.user_id)) for r in quality] == [
        (4, "submitted", annotator["id"])
    ]
    assert [r.value for r in topic] == ["cats"]
