"""A tiny open_clip architecture for tests and CPU smoke runs (``mmloom-tiny-clip``).

Real builds use a built-in open_clip model (ViT-L-14 by default). This one exists so that the
whole CLIP path — config, local checkpoint, RunInference, scoring, filtering and embedding
dedupe — runs on a CPU in seconds with no network: ``tools/make_tiny_clip.py`` writes a
checkpoint for it (random weights, optionally briefly trained so that crops and re-renders of
one picture embed close together), and a build config may name it like any other model::

    clip:
      model: mmloom-tiny-clip
      checkpoint: tiny-clip.safetensors

The architecture is registered with open_clip on demand (:func:`register_model_configs`)
from the dict below, so workers need no extra package data.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Any

TINY_MODEL_NAME = "mmloom-tiny-clip"

# 64x64 input, 8x8 patches (64 tokens), 2 blocks of width 128, average pooling; text: 1 block
# of width 64 over open_clip's BPE vocabulary (its default tokenizer applies), 32 tokens.
TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 64,
        "layers": 2,
        "width": 128,
        "head_width": 32,
        "mlp_ratio": 2.0,
        "patch_size": 8,
        "pool_type": "avg",
    },
    "text_cfg": {
        "context_length": 32,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 1,
    },
}

MODEL_CONFIGS: dict[str, dict[str, Any]] = {TINY_MODEL_NAME: TINY_MODEL_CONFIG}

_LOCK = threading.Lock()
_REGISTERED: set[str] = set()


def register_model_configs() -> None:
    """Make mmloom's own architectures known to open_clip (idempotent, thread-safe).

    open_clip reads model configs from JSON files, so each config is written once into a
    private temporary folder that is then added to open_clip's search path.
    """
    import open_clip

    with _LOCK:
        missing = [n for n in MODEL_CONFIGS if n not in _REGISTERED]
        if not missing:
            return
        folder = tempfile.mkdtemp(prefix="mmloom-clip-configs-")
        for name in missing:
            with open(os.path.join(folder, f"{name}.json"), "w", encoding="utf-8") as f:
                json.dump(MODEL_CONFIGS[name], f)
        open_clip.add_model_config(folder)
        _REGISTERED.update(missing)
