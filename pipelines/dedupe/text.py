"""Item-text duplicates: normalised equality and MinHash LSH near-duplicates.

The text of an item is its question (without the source's fixed prompt) and its reference
answer (:func:`item_text`). Two items are *equal* when their normalised texts are equal
(Unicode NFKC, lower case, punctuation removed, whitespace collapsed). They are
*near-duplicates* when the Jaccard similarity of their word 5-gram sets reaches a threshold
(default 0.8), estimated with
MinHash signatures (datasketch) and found without comparing all pairs by LSH banding:
signatures are cut into ``b`` bands of ``r`` rows, and records sharing a band become
candidates, which are then verified on the MinHash estimate. ``b`` and ``r`` are chosen, as
datasketch's own LSH does, to minimise the weighted false-positive and false-negative areas
around the threshold.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from typing import Any

import numpy as np
from datasketch import MinHash

NUM_PERM = 128
SHINGLE = 5
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def question_text(record: dict[str, Any]) -> str:
    """The question's own text: its segments' texts, without the source's fixed prompt."""
    prompt = (record.get("source_metadata") or {}).get("prompt")
    parts = [s["text"] for s in record["question"] if s["text"] and s["text"] != prompt]
    return "\n".join(parts)


def item_text(record: dict[str, Any]) -> str:
    """What text dedupe compares: the question's own text plus the reference answer's text.

    Question text alone is not an item: templated benchmarks ask the same words about
    different pictures (MathVista's KVQA items ask "What is the age gap between these two
    people in image?" of many photos, with different answers). The same question with the
    same reference answer is the same item whatever the picture.
    """
    answer = [s["text"] for s in record["answer"] if s["text"]]
    return "\n".join([question_text(record), *answer])


def text_key(text: str) -> str:
    """Key of exact (normalised) equality."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


def shingles(text: str, n: int = SHINGLE) -> set[str]:
    words = normalise(text).split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def minhash(text: str, num_perm: int = NUM_PERM, seed: int = 1) -> np.ndarray:
    """MinHash signature (uint64 array) of the text's word 5-grams."""
    m = MinHash(num_perm=num_perm, seed=seed)
    for s in sorted(shingles(text)):
        m.update(s.encode("utf-8"))
    return m.hashvalues.copy()


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


@functools.cache
def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising FP + FN area (equal weights)."""

    def area(f, lo, hi) -> float:
        xs = np.linspace(lo, hi, 201)
        return float(np.trapezoid(f(xs), xs))

    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = area(lambda s, b=b, r=r: 1 - (1 - s**r) ** b, 0.0, threshold)
            fn = area(lambda s, b=b, r=r: (1 - s**r) ** b, threshold, 1.0)
            if fp + fn < best_err:
                best, best_err = (b, r), fp + fn
    return best


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[tuple[int, str]]:
    return [
        (i, hashlib.sha1(signature[i * rows : (i + 1) * rows].tobytes()).hexdigest()[:16])
        for i in range(bands)
    ]
