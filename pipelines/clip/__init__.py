"""CLIP image–text scoring, filtering and embedding near-duplicates (Beam RunInference).

Stages, in build order (after LoadImages -> ValidateRecords -> DropDuplicateIds)::

    records ─► ScoreImageText (or SkipClipScoring for --no-clip) ─► DedupeRecords
                 │                                                  ─► FilterByClipScore ─► ...
                 └─ "image_embeddings" ─► FindEmbeddingDuplicates ─► (sha_a, sha_b, cosine)
                                           edges, joined with the pHash edges in DedupeRecords

* :class:`ScoreImageText` writes ``scores.clip`` (one cosine per image segment with its text,
  the rule in :mod:`pipelines.clip.pairs`; ``min_score`` is the lowest pair) and keeps the
  record's image bytes. Undecodable images are dead letters (stage ``score_clip``).
* :class:`FilterByClipScore` decides separately (thresholds per category, or the top
  fraction per source), so thresholds change without re-scoring; drops are dead letters
  (stage ``filter_clip``) with score and threshold.
* :class:`FindEmbeddingDuplicates` turns the image embeddings the scorer computed into
  near-duplicate edges (cosine >= 0.95 by default), exact blockwise products on GPU or CPU.
* :class:`OpenClipModelHandler` is the RunInference handler (keyed through
  ``KeyedModelHandler``; CUDA when present, bf16 autocast there; batch bounds from config;
  ``clip.share_model`` shares one model across worker processes).

Weights
-------
The model is named by ``clip.model`` (an open_clip architecture) and its weights by either

* ``clip.pretrained``: an open_clip tag. open_clip downloads the weights from the Hugging Face
  hub on first use and caches them (``~/.cache/huggingface``; set ``HF_HOME`` to move it).
  ``python -c "import open_clip; print(open_clip.list_pretrained())"`` lists the pairs; or
* ``clip.checkpoint``: a local file (or ``gs://`` URI, copied locally on the worker), read with
  no network. To make one for an offline machine or for Dataflow workers without internet::

      python -c "import open_clip; open_clip.create_model('ViT-L-14', pretrained='openai')"
      # then copy the cached file, e.g. from
      # ~/.cache/huggingface/hub/models--timm--vit_large_patch14_clip_224.openai/snapshots/*/
      #   open_clip_model.safetensors (or open_clip_pytorch_model.bin)
      # and set clip.model: ViT-L-14, clip.checkpoint: /path/to/open_clip_model.safetensors

  ``clip.model: local-dir:/folder`` (a folder with ``open_clip_config.json`` and the weights,
  as in open_clip's hub repositories) also works.

Tests and CPU smoke runs use ``mmloom-tiny-clip`` (:mod:`pipelines.clip.tiny`) with a
checkpoint written by ``tools/make_tiny_clip.py``, loaded through the same code path.

Default model and thresholds
----------------------------
A release scores with **ViT-L-14 / openai** (the config default): it is the model the
filtering anchors used, so their thresholds transfer. Anchors: MMC4 drops images whose
ViT-L/14 similarity to every sentence is below **0.15** and its core set has 75% of
image–sentence assignments >= **0.25**; DataComp keeps the **top 30%** by L/14 score, or
ViT-B/32 >= **0.25** (its LAION-2B reproduction uses B/32 >= **0.28**); NeMo Curator's
interleaved CLIP filter defaults to **0.15**. The thresholds are per category
(``clip.thresholds``) because the texts differ in kind: SA and PBL pair each image with its
own sentence or step, like MMC4, so 0.15 (MMC4's floor) is the starting point; MSR and IF pair
diagrams, charts and photos with a question that rarely describes them, so their scores are
lower and a threshold there should be set from the score distribution of a scored build (or by
``keep_top_fraction`` per source, DataComp's rule). Scores from other models are on other
scales: thresholds for ViT-B-32 or another tag must be re-derived, which is why records name
the model that scored them.
"""

import importlib
from typing import Any

# Names are loaded on first use (PEP 562): ``ScoreImageText`` and the handler import torch
# through Beam's RunInference, which a --no-clip build, its workers and the CLI never need.
_EXPORTS = {
    "STAGE_FILTER_CLIP": "pipelines.clip.filter",
    "FilterByClipScore": "pipelines.clip.filter",
    "ClipInput": "pipelines.clip.model",
    "ClipModel": "pipelines.clip.model",
    "ClipSpec": "pipelines.clip.model",
    "OpenClipModelHandler": "pipelines.clip.handler",
    "FindEmbeddingDuplicates": "pipelines.clip.neardup",
    "duplicate_edges": "pipelines.clip.neardup",
    "embedding_duplicate_pairs": "pipelines.clip.neardup",
    "clip_pairs": "pipelines.clip.pairs",
    "STAGE_SCORE_CLIP": "pipelines.clip.score",
    "ScoreImageText": "pipelines.clip.score",
    "clip_scores": "pipelines.clip.score",
    "SkipClipScoring": "pipelines.clip.skip",
    "NO_CLIP_REASON": "pipelines.clip.settings",
    "ClipSettings": "pipelines.clip.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines.clip' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
