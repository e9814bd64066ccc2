"""Embedding near-duplicates: image pairs whose CLIP embeddings have cosine >= a threshold.

Perceptual hashes miss crops, edits and re-renders of a picture; CLIP embeddings of those stay
close. The search is exact (no approximate index): the L2-normalised embedding matrix is
multiplied with itself in square tiles (``block x block`` cosines at a time, upper triangle
only) on the GPU when one is present, on the CPU otherwise. A million ViT-L/14 embeddings
(768 dims) cost about 4e14 multiply-adds, seconds to tens of seconds of GPU time in float32;
memory stays at one ``block x block`` tile besides the matrix.

The output edges ``(sha256_a, sha256_b, cosine)`` (``sha256_a < sha256_b``) join the pHash
edges in the dedupe stage's union-find (``pipelines.dedupe.hamming.clusters``), so embedding
near-duplicates fall into the same duplicate clusters and keep rule as pHash ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np

from schemas.stage import CountedStage

DEFAULT_BLOCK = 4096


def embedding_duplicate_pairs(
    embeddings: np.ndarray,
    threshold: float = 0.95,
    block: int = DEFAULT_BLOCK,
    device: str = "auto",
) -> list[tuple[int, int, float]]:
    """Every index pair ``(i, j, cosine)``, ``i < j``, with cosine >= ``threshold``.

    Args:
        embeddings: ``n x d`` float matrix; rows are L2-normalised here (zero rows never match).
        threshold: cosine in [-1, 1].
        block: tile side of the matrix products; bounds memory to ``block x block`` floats.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.

    Products run in float32 (TF32 is not enabled here, so the cosines are exact to float32
    rounding).
    """
    import torch

    from pipelines.clip.model import resolve_device

    dev = resolve_device(device)
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=dev)
    n = x.shape[0]
    if n < 2:
        return []
    x = torch.nn.functional.normalize(x, dim=1)
    found: list[tuple[int, int, float]] = []
    with torch.inference_mode():
        for r0 in range(0, n - 1, block):
            rows = x[r0 : r0 + block]
            for c0 in range(r0, n, block):
                sims = rows @ x[c0 : c0 + block].T  # cosines of rows r0.. with columns c0..
                ii, jj = torch.nonzero(sims >= threshold, as_tuple=True)
                if c0 == r0:  # diagonal tile: upper triangle only
                    keep = jj > ii
                    ii, jj = ii[keep], jj[keep]
                if len(ii) == 0:
                    continue
                vals = sims[ii, jj].cpu().numpy()
                for i, j, v in zip(ii.cpu().numpy(), jj.cpu().numpy(), vals):
                    found.append((r0 + int(i), c0 + int(j), float(v)))
    return found


def duplicate_edges(
    items: Iterable[tuple[str, np.ndarray]],
    threshold: float = 0.95,
    block: int = DEFAULT_BLOCK,
    device: str = "auto",
) -> list[tuple[str, str, float]]:
    """``(sha256_a, sha256_b, cosine)`` edges, ``sha256_a < sha256_b``, between DISTINCT images.

    ``items`` are ``(sha256, embedding)``; a sha256 listed twice is one image (its first
    embedding is used), so an image is never paired with itself.
    """
    by_sha: dict[str, np.ndarray] = {}
    for sha, emb in items:
        by_sha.setdefault(sha, np.asarray(emb, dtype=np.float32))
    shas = sorted(by_sha)
    if len(shas) < 2:
        return []
    matrix = np.stack([by_sha[s] for s in shas])
    return [
        (shas[i], shas[j], round(c, 6))
        for i, j, c in embedding_duplicate_pairs(matrix, threshold, block, device)
    ]


class FindEmbeddingDuplicates(CountedStage):
    """Near-duplicate image pairs from CLIP embeddings (exact, blockwise matrix products).

    Args:
        threshold: cosine at or above which two images are near-duplicates (config
            ``clip.embedding_duplicate_threshold``, default 0.95).
        block: tile side of the matrix products.
        device: ``auto``, ``cpu`` or ``cuda``.

    Input: ``PCollection[(sha256, embedding)]`` (``ScoreImageText``'s ``image_embeddings``).
    Output: ``PCollection[(sha256_a, sha256_b, cosine)]`` with ``sha256_a < sha256_b``.
    All embeddings meet on one worker (n x d float32: 3 GB for a million ViT-L/14 images).
    Dead letters: none (a failure here fails the run: it is no one record's fault).
    Counters (namespace ``FindEmbeddingDuplicates``): ``images``, ``edges``.
    """

    def __init__(self, threshold: float, block: int = DEFAULT_BLOCK, device: str = "auto") -> None:
        super().__init__()
        if not -1 <= threshold <= 1:
            raise ValueError(f"embedding duplicate threshold must be in [-1, 1], got {threshold}")
        self._threshold = threshold
        self._block = block
        self._device = device

    def expand(self, embeddings):
        threshold, block, device, stage = self._threshold, self._block, self._device, type(self)

        def edges(items: list[tuple[str, np.ndarray]]) -> Iterator[tuple[str, str, float]]:
            stage.count("images", len(items))
            found = duplicate_edges(items, threshold, block, device)
            stage.count("edges", len(found))
            yield from found

        return (
            embeddings
            | "CollectEmbeddings" >> beam.combiners.ToList()
            | "PairsAboveThreshold" >> beam.FlatMap(edges)
        )
