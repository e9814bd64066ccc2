"""The OpenAI-compatible handler against a real HTTP server on 127.0.0.1.

The server below is a stand-in for vLLM's OpenAI-compatible API (``vllm serve``), not vLLM: it
serves ``POST /v1/chat/completions`` in the OpenAI format (messages with text and
``image_url`` parts holding ``data:`` URLs; ``logprobs`` / ``top_logprobs`` in the answer),
and computes its answers with the tiny local VLM (tools/make_tiny_vlm.py). So the test runs
real HTTP, real JSON and real images as data URLs, and the answers can be checked against the
same model run locally.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.audit.label import LabelItem, label_item
from pipelines.audit.label_handler import OpenAILabelHandler, ServerSpec, TransformersLabelHandler
from pipelines.audit.label_model import VlmModel, VlmSpec
from pipelines.audit.label_score import ScoreLabelAgreement
from schemas.errors import EnvironmentFault, find_environment_fault
from schemas.store import ImageStore
from tests.audit_label.conftest import mc_record, open_record

pytestmark = pytest.mark.slow  # loads transformers and runs a model

KEY_ENV = "MMLOOM_TEST_LABEL_KEY"
KEY = "sk-test-not-a-real-key-8d1f"


class StandInServer:
    """A chat-completions server on 127.0.0.1 answering with a local :class:`VlmModel`.

    Attributes:
        fail_next: answer this many requests with HTTP 503 first (a busy server).
        no_logprobs: leave log-probabilities out of the answers (a server without them).
        seen_auth: the Authorization header of every request.
    """

    def __init__(self, model: VlmModel, key: str | None) -> None:
        self.model = model
        self.key = key
        self.fail_next = 0
        self.no_logprobs = False
        self.seen_auth: list[str | None] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                server.seen_auth.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = server.answer(self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, headers, body: dict) -> tuple[int, dict]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if self.key and headers.get("Authorization") != f"Bearer {self.key}":
            return 401, {"error": {"message": "invalid API key"}}
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                return 503, {"error": {"message": "busy"}}
            item = item_from_messages(body["messages"])
            return 200, self.complete(item, body)

    def complete(self, item: LabelItem, body: dict) -> dict:
        tokenizer = self.model.tokenizer
        if body["max_tokens"] == 1 and body.get("top_logprobs"):
            vocab = self.model.next_token_logprobs(item)
            ranked = sorted(range(len(vocab)), key=lambda i: (-vocab[i], i))
            top = [
                {"token": tokenizer.convert_ids_to_tokens(i), "logprob": vocab[i]}
                for i in ranked[: body["top_logprobs"]]
            ]
            content = top[0]["token"]
            tokens = [{**top[0], "top_logprobs": top}]
        else:
            content, generated = self.model.generate(item, body["max_tokens"])
            tokens = [{"token": t, "logprob": lp, "top_logprobs": []} for t, lp, _ in generated]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
            "logprobs": None if self.no_logprobs or not body.get("logprobs") else {
                "content": tokens
            },
        }  # fmt: skip
        return {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [choice]}  # fmt: skip


def item_from_messages(messages: list[dict]) -> LabelItem:
    """The item the request describes (text parts and images decoded from data URLs)."""
    parts, images = [], []
    for part in messages[0]["content"]:
        if part["type"] == "text":
            parts.append(("text", part["text"]))
        else:
            header, data = part["image_url"]["url"].split(",", 1)
            assert header.startswith("data:image/") and header.endswith(";base64")
            images.append((header[11:-7], base64.b64decode(data)))
            parts.append(("image", len(images) - 1))
    return LabelItem("request", tuple(parts), tuple(images), None, "")


@pytest.fixture(scope="module")
def local(tiny_vlm):
    handler = TransformersLabelHandler(VlmSpec(tiny_vlm, "cpu", 6))
    return handler, handler.load_model()


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    store = ImageStore(str(tmp_path_factory.mktemp("store")))
    records = [
        mc_record("h1", gold="A", store=store),
        mc_record("h2", gold="B", n_options=4, n_images=1, store=store),
        mc_record("h3", gold="C", store=store),
        open_record("h4", gold="3", store=store),
        open_record("h5", gold="no", answer_type="text", store=store),
    ]
    return [
        label_item(r, {im["path"]: store.get(im["path"]) for im in r["images"]}) for r in records
    ]


def spec(base_url: str, **kw) -> ServerSpec:
    return ServerSpec(base_url, "tiny-served", api_key_env=KEY_ENV, max_new_tokens=6,
                      backoff_s=0.01, **kw)  # fmt: skip


def test_answers_over_http_match_the_local_model(local, items, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    handler, model = local
    with StandInServer(model, KEY) as server:
        remote = OpenAILabelHandler(spec(server.base_url, concurrency=3))
        caplog.set_level(logging.DEBUG)
        got = {r.example: r.inference for r in remote.run_inference(items, remote.load_model())}
    want = {r.example: r.inference for r in handler.run_inference(items, model)}
    assert server.seen_auth == [f"Bearer {KEY}"] * len(items)
    assert KEY not in caplog.text
    compared = 0
    for item in items:
        g, w = got[item.key], want[item.key]
        assert g["model"] == "tiny-served" and g["method"] == w["method"]
        if not g["scored"]:  # no option letter among the top 20 tokens of a random model
            assert "top answer tokens" in g["reason"]
            continue
        compared += 1
        # the most probable option is among the top tokens whenever any option is
        assert (g["predicted"], g["agree"]) == (w["predicted"], w["agree"])
        every_option = g["method"] == "generate" or all(p["p"] > 0 for p in g["probabilities"])
        if every_option:  # the same distribution as the local scoring
            assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-5)
            assert g["suspicion"] == pytest.approx(w["suspicion"], abs=1e-5)
        if every_option and g["method"] == "options":
            assert [p["p"] for p in g["probabilities"]] == pytest.approx(
                [p["p"] for p in w["probabilities"]], abs=1e-5
            )
    assert compared >= 3


def test_a_busy_server_is_asked_again(local, items, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    with StandInServer(local[1], KEY) as server:
        server.fail_next = 2
        remote = OpenAILabelHandler(spec(server.base_url, max_retries=2))
        (result,) = remote.run_inference(items[3:4], remote.load_model())
    assert result.inference["scored"] is True
    assert len(server.seen_auth) == 3
    assert caplog.text.count("HTTP 503") == 2 and KEY not in caplog.text


def test_a_server_without_logprobs_gives_answers_without_suspicion(local, items, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with StandInServer(local[1], None) as server:
        server.no_logprobs = True
        remote = OpenAILabelHandler(spec(server.base_url))
        results = list(remote.run_inference(items[3:], remote.load_model()))
    assert server.seen_auth == [None, None], "no key set: none sent"
    for r in results:
        assert r.inference["scored"] and r.inference["confidence"] is None
        assert r.inference["suspicion"] in (0.0, None)


def test_a_refused_key_fails_the_run_with_one_message(local, monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, "wrong-key-5e2a")
    store = ImageStore(str(tmp_path / "build"))
    records = [mc_record("k1", store=store), open_record("k2", store=store)]
    with StandInServer(local[1], KEY) as server:
        p = TestPipeline()
        _ = (
            p
            | beam.Create(records)
            | ScoreLabelAgreement(OpenAILabelHandler(spec(server.base_url)), store)
        )
        with pytest.raises(Exception) as raised:
            p.run().wait_until_finish()
    fault = find_environment_fault(raised.value)
    assert fault is not None
    message = str(fault)
    assert "answered HTTP 401 (invalid API key)" in message and f"${KEY_ENV}" in message
    assert "wrong-key-5e2a" not in message


def test_a_server_that_is_not_there_fails_after_its_retries(local, items, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with StandInServer(local[1], None) as server:
        base_url = server.base_url  # closed when the block ends: nothing listens there
    remote = OpenAILabelHandler(spec(base_url, max_retries=1, timeout_s=2))
    with pytest.raises(EnvironmentFault, match=r"did not answer after 2 tries"):
        list(remote.run_inference(items[:1], remote.load_model()))
