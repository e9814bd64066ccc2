"""The blind-answerability language model: spec, preflight, tokenizing, and the model wrapper
that computes per-token log-probabilities on fixed shapes (torch and transformers are imported
where they are used, so the preflight and the config never load them).

Loading is ``transformers``' own: ``AutoModelForCausalLM.from_pretrained(name)`` and
``AutoTokenizer.from_pretrained(name)``, where ``name`` is ``audit.blind.checkpoint`` (a local
folder, read with ``local_files_only``) or ``audit.blind.model`` (a hub repo id, downloaded and
cached by transformers on first use). On CUDA the weights are loaded in bf16; on the CPU in
fp32. Log-probabilities are always computed in float32 from the logits.

**Fixed shapes.** A row's float results depend on the matrix-product kernel, which is chosen
by shape (see ``pipelines/clip/model.py``, ``CPU_FORWARD_ROWS``). So every forward pass has
exactly :func:`forward_rows` rows (the last pass of a batch padded by repeating its last row)
and a length that is a function of the text's own token count only (:func:`bucket_length`:
the next power of two, at least 16, at most ``max_length``), right-padded, with no attention
mask (the model's causal mask alone: a token never sees the padding after it, and no
batch-dependent mask switches the attention kernel). A text's log-probabilities are then the
same bits whatever batch RunInference put it in.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from schemas.errors import PipelineConfigError

LOG = logging.getLogger("mmloom.audit.blind")

CPU_FORWARD_ROWS = 8
CUDA_FORWARD_ROWS = 16
MIN_BUCKET = 16
# files of a save_pretrained folder the stage needs (weights are checked by transformers)
MODEL_CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def forward_rows(device: str, max_batch_size: int | None = None) -> int:
    """The fixed number of rows of every forward pass on ``device`` (``cpu`` or ``cuda``)."""
    rows = CUDA_FORWARD_ROWS if device == "cuda" else CPU_FORWARD_ROWS
    return max(1, min(rows, max_batch_size or rows))


def bucket_length(n_tokens: int, max_length: int) -> int:
    """The padded length of a text of ``n_tokens``: the next power of two, at least
    :data:`MIN_BUCKET`, at most ``max_length`` (a function of the text alone)."""
    if n_tokens > max_length:
        raise ValueError(f"{n_tokens} tokens exceed max_length {max_length}")
    length = MIN_BUCKET
    while length < n_tokens:
        length *= 2
    return min(length, max_length)


class BlindInput(NamedTuple):
    """One RunInference example: token ids of context + continuation, and where the
    continuation starts (``tokens[start:]`` are scored; ``start >= 1``)."""

    ref: str
    tokens: np.ndarray
    start: int
    truncated: bool


@dataclass(frozen=True)
class BlindSpec:
    """Which language model to run, where, and on how many tokens.

    Attributes:
        name: a local model folder or a hub repo id (``from_pretrained``'s argument).
        local: ``name`` is a local folder (loaded with ``local_files_only``).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        max_length: most tokens of one scored text.
    """

    name: str
    local: bool
    device: str
    max_length: int

    @property
    def model_id(self) -> str:
        """What records name as ``scores.blind.model``: the folder's name or the repo id."""
        return os.path.basename(os.path.normpath(self.name)) if self.local else self.name


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "audit.blind.device is 'cuda' but torch sees no CUDA device; set it to 'auto' or "
            "'cpu', or run on a machine with a GPU and a CUDA build of torch"
        )
    if device not in ("cpu", "cuda"):
        raise ValueError(f"audit.blind.device must be auto, cpu or cuda, got {device!r}")
    return device


def _hub_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(repo, name), str) for name in (MODEL_CONFIG,))


def require_model(spec: BlindSpec, config_path: str) -> None:
    """Refuse to start a build whose language model cannot be had, before any pipeline
    starts (nothing is loaded or downloaded here).

    A local folder must hold ``config.json`` and the tokenizer's files; a hub repo id must be
    in the Hugging Face cache, or the hub must answer (a HEAD request of a few seconds; never
    with ``HF_HUB_OFFLINE`` set).

    Raises:
        PipelineConfigError: one message naming ``audit.blind.checkpoint`` in ``config_path``
            and ``--no-blind``.
    """
    from pipelines.clip.model import _hub_offline, _probe

    hint = (
        f"set audit.blind.checkpoint in {config_path} to a local model folder (`make tiny-lm` "
        "writes a tiny test one), or pass --no-blind to build without the blind audit"
    )
    if spec.local:
        files = (MODEL_CONFIG, *TOKENIZER_FILES)
        missing = [f for f in files if not os.path.isfile(os.path.join(spec.name, f))]
        if not os.path.isdir(spec.name) or missing:
            what = f"lacks {', '.join(missing)}"
            if not os.path.isdir(spec.name):
                what = "is not a folder"
            raise PipelineConfigError(
                f"audit.blind.checkpoint {spec.name} {what}: it must be a folder written by "
                f"transformers' save_pretrained (a causal LM and its tokenizer); {hint}"
            )
        return
    if _hub_cached(spec.name):
        return
    why = "HF_HUB_OFFLINE is set" if _hub_offline() else _probe(f"hf://{spec.name}/{MODEL_CONFIG}")
    if why is None:
        LOG.info("blind model %s is not cached yet: transformers downloads it", spec.name)
        return
    raise PipelineConfigError(
        f"the blind-audit model {spec.name} (audit.blind.model) is not in the Hugging Face cache "
        f"and cannot be downloaded now ({why}): {hint}"
    )


def load_tokenizer(spec: BlindSpec):
    """The model's tokenizer (``AutoTokenizer``), local files only for a folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.name, local_files_only=spec.local)


def encode(tokenizer, context: str, continuation: str, max_length: int) -> BlindInput:
    """Token ids of ``context`` (after the tokenizer's BOS, or EOS where it has no BOS) and
    ``continuation``, each tokenized on its own, cut to ``max_length`` tokens: the
    continuation keeps at most its first ``max_length // 2`` tokens, the context its last
    tokens in the rest (so a long answer never crowds out the question). ``ref`` is left
    empty for the caller."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ctx = ([bos] if bos is not None else []) + tokenizer.encode(context, add_special_tokens=False)
    cont = tokenizer.encode(continuation, add_special_tokens=False)
    if not ctx or not cont:
        raise ValueError("the context and the continuation must each have at least one token")
    truncated = False
    if len(cont) > max_length // 2:
        cont, truncated = cont[: max_length // 2], True
    if len(ctx) + len(cont) > max_length:
        ctx, truncated = ctx[len(ctx) + len(cont) - max_length :], True
    tokens = np.asarray(ctx + cont, dtype=np.int64)
    return BlindInput("", tokens, len(ctx), truncated)


class BlindLM:
    """A loaded causal LM that returns per-token log-probabilities of continuations.

    :meth:`token_logprobs` takes and returns numpy arrays only (so the object works the same
    behind RunInference's shared-model proxy). Every forward pass has :attr:`forward_rows`
    rows and a bucket length (:func:`bucket_length`): see the module docstring.

    Args:
        spec: model, device, max_length.
        max_batch_size: caps :attr:`forward_rows`.
    """

    def __init__(self, spec: BlindSpec, max_batch_size: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.spec = spec
        self.device = resolve_device(spec.device)
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(
            spec.name, dtype=self.dtype, local_files_only=spec.local
        )
        model.to(self.device)
        model.eval()
        self.model = model
        self.pad_id = int(model.config.pad_token_id or 0)
        self.forward_rows = forward_rows(self.device, max_batch_size)
        self._lock = threading.Lock()
        LOG.info(
            "loaded blind LM %s on %s (%s, %d rows per forward pass)",
            spec.model_id,
            self.device,
            self.dtype,
            self.forward_rows,
        )

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        """float32 log-probabilities of each next token, ``(rows, length - 1)``."""
        import torch

        x = torch.from_numpy(ids).to(self.device)
        logits = self.model(input_ids=x, use_cache=False).logits[:, :-1].float()
        target = x[:, 1:].unsqueeze(-1)
        picked = logits.gather(-1, target).squeeze(-1)
        return (picked - torch.logsumexp(logits, dim=-1)).cpu().numpy()

    def token_logprobs(self, inputs: Sequence[BlindInput]) -> list[np.ndarray]:
        """Per input, the float32 log-probabilities of its continuation's tokens."""
        import torch

        by_length: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(inputs):
            by_length[bucket_length(len(item.tokens), self.spec.max_length)].append(i)
        out: list[np.ndarray | None] = [None] * len(inputs)
        rows = self.forward_rows
        with self._lock, torch.inference_mode():
            for length, members in sorted(by_length.items()):
                for start in range(0, len(members), rows):
                    part = members[start : start + rows]
                    ids = np.full((rows, length), self.pad_id, dtype=np.int64)
                    for r in range(rows):
                        tokens = inputs[part[min(r, len(part) - 1)]].tokens
                        ids[r, : len(tokens)] = tokens
                    logprobs = self._forward(ids)
                    for r, i in enumerate(part):
                        item = inputs[i]
                        out[i] = logprobs[r, item.start - 1 : len(item.tokens) - 1].copy()
        return out  # type: ignore[return-value]


def blind_spec(config) -> BlindSpec:
    """The :class:`BlindSpec` of a :class:`pipelines.config.BlindConfig`."""
    if config.checkpoint:
        return BlindSpec(config.checkpoint, True, config.device, config.max_length)
    if not config.model:
        raise ValueError("audit.blind has neither checkpoint nor model")
    return BlindSpec(config.model, False, config.device, config.max_length)
