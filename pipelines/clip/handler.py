"""The RunInference ``ModelHandler`` for open_clip. Importing it imports no torch (Beam's
RunInference names come from :mod:`pipelines.transforms.inference`): torch and open_clip are
imported by ``load_model``, in ``DoFn.setup()``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pipelines.clip.model import IMAGE, TEXT, ClipInput, ClipModel, ClipSpec
from pipelines.transforms.inference import ModelHandler, PredictionResult


class OpenClipModelHandler(ModelHandler[ClipInput, PredictionResult, ClipModel]):
    """RunInference handler for open_clip: embeds images and texts of one batch.

    A batch may mix images and texts: images are stacked into one ``N x H x W x 3`` array
    (they share one shape, see :class:`ImagePreprocessor`), texts into one token matrix, and
    both towers run once per batch. Each result is a ``PredictionResult`` whose ``example``
    is ``(kind, ref)`` (the input array is not carried on) and whose ``inference`` is the
    L2-normalised float32 embedding; wrap the handler in ``KeyedModelHandler`` to carry keys.
    The model runs every forward pass on one padded shape
    (:func:`pipelines.clip.model.forward_rows`), so an embedding is the same bits whatever
    batch Beam put it in.

    Args:
        spec: model, weights, device and precision.
        min_batch_size / max_batch_size: Beam's ``BatchElements`` bounds; the maximum is what
            keeps a batch inside GPU memory (and a CUDA out-of-memory error still splits the
            batch in halves instead of failing).
        large_model: load one copy per machine and share it across worker processes
            (``share_model_across_processes``), for models that do not fit once per process.
        model_copies: with several GPUs or a big GPU, how many shared copies to load.
        max_batch_duration_secs: streaming only: flush a partial batch after this long.
    """

    def __init__(
        self,
        spec: ClipSpec,
        *,
        min_batch_size: int = 1,
        max_batch_size: int = 256,
        large_model: bool = False,
        model_copies: int | None = None,
        max_batch_duration_secs: int | None = None,
    ) -> None:
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
            large_model=large_model,
            model_copies=model_copies,
        )
        self._spec = spec
        self._max_batch_size = max_batch_size

    @property
    def spec(self) -> ClipSpec:
        return self._spec

    def load_model(self) -> ClipModel:
        return ClipModel(self._spec, max_batch_size=self._max_batch_size)

    def run_inference(
        self,
        batch: Sequence[ClipInput],
        model: ClipModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        img_idx = [i for i, e in enumerate(batch) if e.kind == IMAGE]
        txt_idx = [i for i, e in enumerate(batch) if e.kind == TEXT]
        if len(img_idx) + len(txt_idx) != len(batch):
            kinds = sorted({e.kind for e in batch} - {IMAGE, TEXT})
            raise ValueError(f"ClipInput.kind must be 'image' or 'text', got {kinds}")
        shapes = {batch[i].data.shape for i in img_idx}
        if len(shapes) > 1:
            raise ValueError(
                f"images of one batch must share one shape (preprocess them first), got {shapes}"
            )
        images = np.stack([batch[i].data for i in img_idx]) if img_idx else None
        tokens = np.stack([batch[i].data for i in txt_idx]) if txt_idx else None
        img_emb, txt_emb = model.embed(images, tokens)
        out: list[np.ndarray | None] = [None] * len(batch)
        for row, i in enumerate(img_idx):
            out[i] = img_emb[row]
        for row, i in enumerate(txt_idx):
            out[i] = txt_emb[row]
        model_id = self._spec.model_id
        return [PredictionResult((e.kind, e.ref), vec, model_id) for e, vec in zip(batch, out)]

    def get_num_bytes(self, batch: Sequence[ClipInput]) -> int:
        return sum(int(e.data.nbytes) for e in batch)

    def get_metrics_namespace(self) -> str:
        return "OpenClipModelHandler"
