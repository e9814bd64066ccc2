"""Near-duplicate search at scale: banded (multi-index) pHash search vs all pairs.

Generates N random 64-bit hashes (default 1,000,000), plants pairs at every Hamming distance
0..k (default k = 5, several per distance), then:

* times the banded search (``pipelines.dedupe.hamming.near_duplicate_pairs``, the same
  band-and-verify code the Beam stage runs per group) on all N hashes;
* times the all-pairs baseline on a subsample (default 100,000) and scales it by n^2 to N;
* prints the recall on the planted pairs (must be 1.0) and the speed-up ratio.

    python bench/dedupe_scale.py [--n 1000000] [--k 5] [--baseline-n 100000]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from pipelines.dedupe.hamming import all_pairs, near_duplicate_pairs


def planted_hashes(n: int, k: int, per_distance: int, seed: int) -> tuple[np.ndarray, set]:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    planted: set[tuple[int, int]] = set()
    slot = 0
    for d in range(k + 1):
        for _ in range(per_distance):
            a, b = 2 * slot, 2 * slot + 1
            flip = np.uint64(0)
            for bit in rng.choice(64, size=d, replace=False):
                flip |= np.uint64(1) << np.uint64(int(bit))
            h[b] = h[a] ^ flip
            planted.add((a, b))
            slot += 1
    return h, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--per-distance", type=int, default=20)
    ap.add_argument("--baseline-n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    hashes, planted = planted_hashes(args.n, args.k, args.per_distance, args.seed)
    t0 = time.perf_counter()
    found = near_duplicate_pairs(hashes, args.k)
    banded_s = time.perf_counter() - t0
    recall = len(planted & found) / len(planted)
    # every found pair must really be within k (no false merges)
    h = hashes
    false_pairs = sum(1 for i, j in found if int(np.bitwise_count(h[i] ^ h[j])) > args.k)

    sub = hashes[: args.baseline_n]
    t0 = time.perf_counter()
    base_found = all_pairs(sub, args.k)
    base_s = time.perf_counter() - t0
    scaled_s = base_s * (args.n / args.baseline_n) ** 2
    sub_banded = near_duplicate_pairs(sub, args.k)

    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(
        f"hashes: {args.n:,}  k: {args.k}  planted pairs: {len(planted)} "
        f"({args.per_distance} at each distance 0..{args.k})"
    )
    print(
        f"banded search on {args.n:,}: {banded_s:.1f} s, pairs found {len(found)}, "
        f"recall on planted {recall:.3f}, pairs beyond k {false_pairs}"
    )
    print(
        f"all-pairs on {args.baseline_n:,}: {base_s:.1f} s "
        f"(same pairs as banded on that subsample: {base_found == sub_banded})"
    )
    print(f"all-pairs scaled by n^2 to {args.n:,}: {scaled_s:.0f} s")
    print(f"ratio all-pairs / banded: {scaled_s / banded_s:.1f}x")
    if recall != 1.0 or false_pairs:
        raise SystemExit("recall below 1.0 or pairs beyond k: the banded search is wrong")


if __name__ == "__main__":
    main()
