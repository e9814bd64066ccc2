"""A ``transformers`` vision-language model loaded from a local folder, asked one item at a time.

The folder is one written by ``save_pretrained``; loading is ``AutoProcessor`` and
``AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True,
use_safetensors=True)``: nothing is downloaded and no pickle is ever unpickled. The prompt is the
processor's chat template applied to one user turn of text and image parts, and the processor
is called with ``text`` and ``images``, so models whose processors follow that convention
(LLaVA-style and most current image-text-to-text models) fit. Tested here with a tiny
LLaVA-shaped model on the CPU only (``tools/make_tiny_vlm.py``); no real model or GPU was run.

Every item runs on its own (its options together, padded to the item's longest), so an item's
numbers do not depend on which other items shared its batch.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from pipelines.audit.label import LabelItem, softmax


@dataclass(frozen=True)
class VlmSpec:
    """Where the model is and where it runs (``device``: auto, cpu or cuda)."""

    folder: str
    device: str = "auto"
    max_new_tokens: int = 16

    @property
    def model_id(self) -> str:
        """The name recorded in ``scores.label.model``: the folder's last component."""
        return self.folder.rstrip("/").rsplit("/", 1)[-1]


def decode_image(data: bytes):
    """PIL RGB image from bytes (raises on undecodable bytes)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def chat_messages(item: LabelItem, image_content: Any = None) -> list[dict[str, Any]]:
    """The item as one user turn in the standard ``messages`` form: text parts and image
    parts in order. ``image_content(index)`` makes an image part (default
    ``{"type": "image"}``, the placeholder a processor's chat template expects)."""
    content: list[dict[str, Any]] = []
    for kind, value in item.parts:
        if kind == "text":
            content.append({"type": "text", "text": value})
        else:
            content.append(image_content(value) if image_content else {"type": "image"})
    return [{"role": "user", "content": content}]


class VlmModel:
    """A loaded processor and model (eval mode, on the spec's device)."""

    def __init__(self, spec: VlmSpec) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.spec = spec
        device = spec.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.processor = AutoProcessor.from_pretrained(spec.folder, local_files_only=True)
        self.model = (
            AutoModelForImageTextToText.from_pretrained(
                spec.folder, local_files_only=True, use_safetensors=True
            )
            .to(device)
            .eval()
        )
        self.tokenizer = self.processor.tokenizer

    def prompt(self, item: LabelItem) -> str:
        """The item through the processor's chat template, ready for the answer."""
        return self.processor.apply_chat_template(
            chat_messages(item), add_generation_prompt=True, tokenize=False
        )

    def _encode(self, texts: list[str], images: list) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if images:
            kwargs["images"] = [images for _ in texts]
        enc = self.processor(**kwargs)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _images(self, item: LabelItem) -> list:
        return [decode_image(data) for _fmt, data in item.images]

    def option_logprobs(self, item: LabelItem) -> list[float]:
        """Log-likelihood of answering with each option letter (summed over its tokens:
        those after the longest prefix the answered text shares with the bare prompt)."""
        import torch

        assert item.options is not None
        prompt = self.prompt(item)
        images = self._images(item)
        self.tokenizer.padding_side = "right"
        prompt_ids = self._encode([prompt], images)["input_ids"][0].tolist()
        enc = self._encode([prompt + label for label in item.options], images)
        with torch.no_grad():
            logits = self.model(**enc).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        out = []
        for row, length in enumerate(lengths):
            seq = enc["input_ids"][row, :length].tolist()
            start = 0
            while start < min(len(seq), len(prompt_ids)) and seq[start] == prompt_ids[start]:
                start += 1
            out.append(
                math.fsum(
                    float(logprobs[row, pos - 1, seq[pos]]) for pos in range(max(start, 1), length)
                )
            )
        return out

    def option_probabilities(self, item: LabelItem) -> dict[str, float]:
        """Each option's probability: softmax of :meth:`option_logprobs` over the options."""
        assert item.options is not None
        return dict(zip(item.options, softmax(self.option_logprobs(item))))

    def next_token_logprobs(self, item: LabelItem) -> list[float]:
        """Log-probabilities of every vocabulary token as the answer's first token."""
        import torch

        enc = self._encode([self.prompt(item)], self._images(item))
        with torch.no_grad():
            logits = self.model(**enc).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1).tolist()

    def generate(self, item: LabelItem, max_new_tokens: int | None = None) -> tuple[str, list]:
        """Greedy answer and, per generated token before the end token, ``(token text,
        logprob, log-probabilities of the whole vocabulary)``."""
        import torch

        enc = self._encode([self.prompt(item)], self._images(item))
        limit = max_new_tokens or self.spec.max_new_tokens
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=limit,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
        eos = set(_as_list(self.model.generation_config.eos_token_id))
        tokens = []
        for step, token_id in enumerate(new):
            if token_id in eos:
                break
            logprobs = torch.log_softmax(out.scores[step][0].float(), dim=-1)
            tokens.append((self.tokenizer.decode([token_id]), float(logprobs[token_id]), logprobs))
        answer = self.tokenizer.decode([new[i] for i in range(len(tokens))])
        return answer, tokens

    def answer(self, item: LabelItem) -> tuple[dict[str, float] | None, str | None, list | None]:
        """What the handler needs: options' probabilities (multiple choice), or the
        generated answer and its tokens' log-probabilities (open-ended)."""
        if item.options:
            return self.option_probabilities(item), None, None
        answer, tokens = self.generate(item)
        return None, answer, [lp for _t, lp, _all in tokens]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
