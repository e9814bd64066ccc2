"""The RunInference ``ModelHandler`` of the blind-answerability audit. Importing it imports no
torch or transformers: the model is loaded in ``load_model`` (``DoFn.setup()``), and the
RunInference names come from :mod:`pipelines.transforms.inference`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pipelines.audit.blind_model import BlindInput, BlindLM, BlindSpec
from pipelines.transforms.inference import ModelHandler, PredictionResult


class BlindLMHandler(ModelHandler[BlindInput, PredictionResult, BlindLM]):
    """RunInference handler for a causal LM: per-token log-probabilities of continuations.

    The model is loaded in ``load_model`` (once per worker, in its ``setup``). Each result
    is a ``PredictionResult`` whose ``example`` is ``(ref, truncated)`` (the token array is
    not carried on) and whose ``inference`` is the float32 array of the continuation's
    per-token log-probabilities; wrap the handler in ``KeyedModelHandler`` to carry record
    ids. Forward passes have fixed shapes (:class:`pipelines.audit.blind_model.BlindLM`), so
    a result does not depend on which batch Beam formed.

    Args:
        spec: model, device, max_length.
        min_batch_size / max_batch_size: Beam's ``BatchElements`` bounds (texts per batch).
        large_model: one copy per machine shared across worker processes.
    """

    def __init__(
        self,
        spec: BlindSpec,
        *,
        min_batch_size: int = 1,
        max_batch_size: int = 64,
        large_model: bool = False,
    ) -> None:
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            large_model=large_model,
        )
        self._spec = spec
        self._max_batch_size = max_batch_size

    @property
    def spec(self) -> BlindSpec:
        return self._spec

    def load_model(self) -> BlindLM:
        return BlindLM(self._spec, max_batch_size=self._max_batch_size)

    def run_inference(
        self,
        batch: Sequence[BlindInput],
        model: BlindLM,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        logprobs = model.token_logprobs(batch)
        model_id = self._spec.model_id
        return [
            PredictionResult((e.ref, e.truncated), lp, model_id) for e, lp in zip(batch, logprobs)
        ]

    def get_num_bytes(self, batch: Sequence[BlindInput]) -> int:
        return sum(int(e.tokens.nbytes) for e in batch)

    def get_metrics_namespace(self) -> str:
        return "BlindLMHandler"
