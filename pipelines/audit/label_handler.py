"""RunInference ``ModelHandler``s that answer a :class:`~pipelines.audit.label.LabelItem`.

Both take ``LabelItem`` elements (wrap them in ``KeyedModelHandler`` to carry keys) and return
one ``PredictionResult`` per item whose ``inference`` is the item's ``scores.label`` value
(:mod:`pipelines.audit.label`), so the stage does not care which one ran:

* :class:`TransformersLabelHandler`: a ``transformers`` model in a local folder
  (:class:`pipelines.audit.label_model.VlmModel`);
* :class:`OpenAILabelHandler`: an OpenAI-compatible chat-completions server, such as vLLM's
  ``vllm serve MODEL`` (:class:`ChatCompletionsClient`): images go as ``data:`` URLs,
  log-probabilities (``logprobs``, ``top_logprobs``) give the confidence where the server
  returns them.

An item whose images do not decode, or that the model cannot take, gets ``scored: false``
with the error as its reason (an audit never drops an item). A fault of the environment (a
server refusing the key, the model, or not answering after its retries) is an
:class:`schemas.errors.EnvironmentFault`: it stops the run with one message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipelines.audit.label import (
    LabelItem,
    choice_scores,
    generated_scores,
    letter_of,
    not_checked,
    option_scores,
    options_from_top_logprobs,
)
from pipelines.audit.label_model import VlmModel, VlmSpec
from pipelines.transforms.inference import ModelHandler, PredictionResult
from schemas.deadletter import scrub_detail
from schemas.errors import EnvironmentFault

LOG = logging.getLogger("mmloom.audit.label")

# HTTP statuses worth another try: the server is busy, restarting or timed out
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _item_bytes(batch: Sequence[LabelItem]) -> int:
    return sum(
        sum(len(data) for _f, data in item.images)
        + sum(len(v) for k, v in item.parts if k == "text")
        for item in batch
    )


def _failed(item: LabelItem, exc: Exception, model: str) -> dict[str, Any]:
    detail = scrub_detail(f"{type(exc).__name__}: {exc}")
    return not_checked(f"the model could not answer: {detail}"[:500], model)


class TransformersLabelHandler(ModelHandler[LabelItem, PredictionResult, VlmModel]):
    """Answer items with a local ``transformers`` vision-language model.

    Items of one batch run one after another (each with its options together), so an item's
    scores are the same whatever batch Beam put it in; the batch bounds set how many items
    one call takes.

    Args:
        spec: the model folder, device and ``max_new_tokens``.
        min_batch_size / max_batch_size: Beam's ``BatchElements`` bounds.
        large_model: share one loaded model across worker processes on a machine.
    """

    def __init__(
        self,
        spec: VlmSpec,
        *,
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        large_model: bool = False,
    ) -> None:
        super().__init__(
            min_batch_size=min_batch_size, max_batch_size=max_batch_size, large_model=large_model
        )
        self._spec = spec

    @property
    def model_id(self) -> str:
        return self._spec.model_id

    def load_model(self) -> VlmModel:
        return VlmModel(self._spec)

    def score(self, item: LabelItem, model: VlmModel) -> dict[str, Any]:
        """One item's ``scores.label`` (an error of the item: ``scored: false``)."""
        try:
            probabilities, answer, logprobs = model.answer(item)
        except EnvironmentFault:
            raise
        except Exception as exc:  # an undecodable image, an input the model refuses
            return _failed(item, exc, self.model_id)
        if probabilities is not None:
            return option_scores(item, probabilities, self.model_id)
        return generated_scores(item, answer or "", logprobs, self.model_id)

    def run_inference(
        self,
        batch: Sequence[LabelItem],
        model: VlmModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return [
            PredictionResult(item.key, self.score(item, model), self.model_id) for item in batch
        ]

    def get_num_bytes(self, batch: Sequence[LabelItem]) -> int:
        return _item_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return "TransformersLabelHandler"


@dataclass(frozen=True)
class ServerSpec:
    """An OpenAI-compatible chat-completions server.

    Attributes:
        base_url: up to ``/v1`` (``http://127.0.0.1:8000/v1`` for ``vllm serve``).
        model: the served model's name (vLLM: the name or path given to ``vllm serve``).
        api_key_env: the environment variable holding the API key (read on the worker, sent
            as a bearer token, never logged); unset or empty: no key is sent.
        max_new_tokens: bound of an open-ended answer.
        top_logprobs: how many alternatives of the first answer token to ask for (vLLM and
            OpenAI allow up to 20).
        concurrency: requests in flight at once per worker.
        timeout_s: seconds one request may take.
        max_retries: further tries of a request that failed transiently (connection errors,
            timeouts, HTTP 408/425/429/5xx), with exponential back-off from ``backoff_s``.
    """

    base_url: str
    model: str
    api_key_env: str = "MMLOOM_LABEL_API_KEY"
    max_new_tokens: int = 16
    top_logprobs: int = 20
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def data_url(fmt: str, data: bytes) -> str:
    """An image as a ``data:`` URL (``image/<format>``; jpg is jpeg)."""
    mime = "jpeg" if fmt in ("jpg", "jpeg") else fmt
    return f"data:image/{mime};base64,{base64.b64encode(data).decode('ascii')}"


def request_body(item: LabelItem, spec: ServerSpec) -> dict[str, Any]:
    """The chat-completions request for an item: one user turn (text and ``image_url``
    parts in order), greedy (temperature 0), with log-probabilities. A multiple-choice item
    asks for one token and its ``top_logprobs`` alternatives."""
    from pipelines.audit.label_model import chat_messages

    def image_part(index: int) -> dict[str, Any]:
        fmt, data = item.images[index]
        return {"type": "image_url", "image_url": {"url": data_url(fmt, data)}}

    body: dict[str, Any] = {
        "model": spec.model,
        "messages": chat_messages(item, image_part),
        "temperature": 0,
        "logprobs": True,
        "max_tokens": 1 if item.options else spec.max_new_tokens,
    }
    if item.options:
        body["top_logprobs"] = spec.top_logprobs
    return body


class ChatCompletionsClient:
    """A small client for one OpenAI-compatible server (standard library only)."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self._key = os.environ.get(spec.api_key_env) or None

    def _fault(self, what: str) -> EnvironmentFault:
        return EnvironmentFault(
            f"the label-suspicion model server at {self.spec.base_url} {what}: check "
            f"audit.label.base_url, audit.label.model ({self.spec.model}) and the API key in "
            f"${self.spec.api_key_env}, or turn the stage off (audit.label.enabled: false)"
        )

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body``; the parsed JSON answer. Transient failures are retried; the rest,
        and running out of tries, raise :class:`EnvironmentFault`."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.spec.max_retries + 1):
            if attempt:
                time.sleep(self.spec.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.spec.endpoint, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.spec.timeout_s) as resp:
                    payload = resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code not in TRANSIENT_STATUSES:
                    detail = _error_message(exc)
                    raise self._fault(f"answered HTTP {exc.code}{detail}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
            else:
                try:
                    return json.loads(payload)
                except ValueError:
                    raise self._fault("answered with something that is not JSON") from None
            LOG.warning("label model server: %s (try %d of %d)", last, attempt + 1,
                        self.spec.max_retries + 1)  # fmt: skip
        raise self._fault(f"did not answer after {self.spec.max_retries + 1} tries ({last})")


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own error message (OpenAI format), shortened; empty when none."""
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("error", {}).get("message") or body.get("message") or ""
    except Exception:
        return ""
    return f" ({str(message)[:200]})" if message else ""


def scores_from_completion(
    item: LabelItem, completion: dict[str, Any], model: str
) -> dict[str, Any]:
    """An item's ``scores.label`` from a chat-completions answer (pure).

    Multiple choice: the options' probabilities from the first token's ``top_logprobs``
    (:func:`pipelines.audit.label.options_from_top_logprobs`); without log-probabilities,
    the letter answered, with no confidence. Open-ended: the answer's text and its tokens'
    log-probabilities.
    """
    choice = (completion.get("choices") or [{}])[0]
    content = (choice.get("message") or {}).get("content") or ""
    tokens = ((choice.get("logprobs") or {}).get("content")) or None
    if item.options:
        if tokens and tokens[0].get("top_logprobs"):
            top = [(t["token"], float(t["logprob"])) for t in tokens[0]["top_logprobs"]]
            probabilities, mass = options_from_top_logprobs(item.options, top)
            if mass <= 0:
                return not_checked(
                    "none of the option letters is among the server's top answer tokens", model
                )
            return option_scores(item, probabilities, model)
        return choice_scores(item, letter_of(content[:3], item.options), model)
    logprobs = [float(t["logprob"]) for t in tokens] if tokens else None
    return generated_scores(item, content, logprobs, model)


class OpenAILabelHandler(ModelHandler[LabelItem, PredictionResult, ChatCompletionsClient]):
    """Answer items through an OpenAI-compatible chat-completions server (vLLM).

    The items of one batch are sent at once, at most ``spec.concurrency`` in flight; results
    come back in the batch's order.
    """

    def __init__(
        self, spec: ServerSpec, *, min_batch_size: int = 1, max_batch_size: int = 8
    ) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._spec = spec

    @property
    def model_id(self) -> str:
        return self._spec.model

    def load_model(self) -> ChatCompletionsClient:
        return ChatCompletionsClient(self._spec)

    def score(self, item: LabelItem, client: ChatCompletionsClient) -> dict[str, Any]:
        try:
            body = request_body(item, self._spec)
        except Exception as exc:
            return _failed(item, exc, self.model_id)
        completion = client.complete(body)  # an EnvironmentFault stops the run
        try:
            return scores_from_completion(item, completion, self.model_id)
        except (KeyError, TypeError, ValueError) as exc:
            return _failed(item, exc, self.model_id)

    def run_inference(
        self,
        batch: Sequence[LabelItem],
        model: ChatCompletionsClient,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        workers = max(1, min(self._spec.concurrency, len(batch)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            scores = list(pool.map(lambda item: self.score(item, model), batch))
        return [PredictionResult(item.key, s, self.model_id) for item, s in zip(batch, scores)]

    def get_num_bytes(self, batch: Sequence[LabelItem]) -> int:
        return _item_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return "OpenAILabelHandler"


def handler_for(config: Any) -> TransformersLabelHandler | OpenAILabelHandler:
    """The (unkeyed) handler an ``audit.label`` block names
    (:class:`pipelines.config.LabelAuditConfig`)."""
    if config.handler == "openai":
        spec = ServerSpec(
            base_url=config.base_url,
            model=config.served_model,
            api_key_env=config.api_key_env,
            max_new_tokens=config.max_new_tokens,
            top_logprobs=config.top_logprobs,
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
        )
        return OpenAILabelHandler(
            spec, min_batch_size=config.min_batch_size, max_batch_size=config.max_batch_size
        )
    return TransformersLabelHandler(
        VlmSpec(config.model_dir, config.device, config.max_new_tokens),
        min_batch_size=config.min_batch_size,
        max_batch_size=config.max_batch_size,
    )
