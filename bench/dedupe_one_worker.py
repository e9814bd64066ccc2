"""What the dedupe stages gather in one worker, measured at N images (default 1,000,000).

``pipelines.dedupe.stages`` spreads the pHash search over Beam (band keys, ``GroupByKey``,
verify) but then gathers every distinct image edge in one worker (``GatherImageEdges >>
ToList``) for the union-find (:func:`image_clusters`), broadcasts the resulting ``canonical``
map to every worker, and broadcasts every item decision (``AsDict(decisions)``). This
measures those one-worker parts at N images with the code the transform runs:

1. N synthetic images ``(sha256, 64-bit pHash, pixels)``: random hashes, of which
   ``--dup-fraction`` (default 10%) sit in near-duplicate clusters of 2, 3 or 4 images
   (weights 6:3:1) whose members differ from the cluster's base hash in at most k // 2 bits,
   so every pair of a cluster is an edge (distance <= k, default 5);
2. the edges: the banded search (``hamming.near_duplicate_pairs``, the band-and-verify of
   the Beam stage in memory: the distributed part, timed as the baseline of the ratio),
   each edge then shaped as :func:`verify_group` yields it, ``((sha, pixels), (sha, pixels))``;
3. the gather: each edge encoded on its own with Beam's ``FastPrimitivesCoder`` (as an
   element crosses a shuffle) and decoded into one list, as ``ToList`` holds it; its memory
   (``tracemalloc``: bytes of Python objects) and encoded bytes;
4. :func:`image_clusters` on that list: time (untraced, the fastest of three runs) and
   peak memory (traced, the edge list included); the ``canonical`` map's encoded size and
   its memory once decoded (what every worker holds as the side input);
5. the decisions: one per image in a cluster beyond the first (as if every near-duplicate
   image carried a copy of one question: an upper bound), made by :func:`decide_group` on
   summaries of records with realistic ids and answers, encoded one by one and decoded into
   the dict that ``AsDict`` gives every worker.

With ``--beam-n`` (default 20,000) it also runs :class:`ClusterImages` itself on the
DirectRunner over that many synthetic records (a set of their own, seed + 1), checks that
its clusters equal :func:`image_clusters` on the in-memory edges, and times it.

Printed: machine, load average, the figures, and the ratio one-worker clustering time /
banded search time (both in this run). One JSON line at the end holds every figure.

    python bench/dedupe_one_worker.py [--n 1000000] [--dup-fraction 0.1] [--beam-n 20000]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import time
import tracemalloc
from typing import Any

import numpy as np
from apache_beam.coders import coders

from pipelines.dedupe import hamming
from pipelines.dedupe.stages import decide_group, image_clusters
from schemas.records import make_id

SIZES, WEIGHTS = (2, 3, 4), (0.6, 0.3, 0.1)


def synthetic_images(n: int, dup_fraction: float, k: int, seed: int) -> dict[str, Any]:
    """``sha``, ``hashes`` (uint64), ``pixels`` of n images; ``clusters``: planted groups."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    pixels = rng.integers(150 * 150, 4000 * 3000, size=n)
    planted: list[list[int]] = []
    i, target = 0, int(n * dup_fraction)
    while i < target:
        size = int(rng.choice(SIZES, p=WEIGHTS))
        members = list(range(i, min(i + size, n)))
        for m in members[1:]:
            flip = np.uint64(0)
            for bit in rng.choice(64, size=int(rng.integers(0, k // 2 + 1)), replace=False):
                flip |= np.uint64(1) << np.uint64(int(bit))
            hashes[m] = hashes[members[0]] ^ flip
        planted.append(members)
        i += size
    sha = [hashlib.sha256(j.to_bytes(8, "big")).hexdigest() for j in range(n)]
    return {"sha": sha, "hashes": hashes, "pixels": pixels, "clusters": planted}


def shaped_edges(images: dict[str, Any], pairs: set[tuple[int, int]]) -> list:
    """Index pairs as :func:`verify_group` yields them: ``((sha, px), (sha, px))``, a < b."""
    sha, px = images["sha"], images["pixels"]
    out = []
    for i, j in sorted(pairs):
        a, b = (sha[i], int(px[i])), (sha[j], int(px[j]))
        out.append((a, b) if a[0] < b[0] else (b, a))
    return out


def traced(build, *args: Any) -> tuple[Any, int, int]:
    """``build(*args)``'s result, the bytes it holds afterwards and its peak (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = build(*args)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, current - base, peak - base


def decode_all(coder: coders.Coder, encoded: list[bytes]) -> list:
    return [coder.decode(b) for b in encoded]


def decode_dict(coder: coders.Coder, encoded: list[bytes]) -> dict:
    return dict(coder.decode(b) for b in encoded)


def decisions_for(images: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One decision per clustered image beyond the first, made by :func:`decide_group`."""
    out = []
    for members in images["clusters"]:
        summaries = [
            {
                "id": make_id("SA", "vist", "test", 10_000_000 + m),
                "source": "vist",
                "question": "what happens next in this story about the day at the beach",
                "near": False,
                "answer": "they swim in the sea and then eat ice cream on the sand",
                "answer_key": ["they swim in the sea", []],
            }
            for m in members
        ]
        out.extend(decide_group(summaries, 0.8))
    return out


def run_beam(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """ClusterImages on the DirectRunner over n synthetic records, checked against memory."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.dedupe.stages import ClusterImages

    images = synthetic_images(n, args.dup_fraction, args.k, args.seed + 1)
    expected = image_clusters(
        shaped_edges(images, hamming.near_duplicate_pairs(images["hashes"], args.k))
    )
    records = [
        {
            "images": [
                {
                    "sha256": images["sha"][i],
                    "phash": f"{int(images['hashes'][i]):016x}",
                    "width": int(images["pixels"][i]),
                    "height": 1,
                }
            ]
        }
        for i in range(n)
    ]
    t0 = time.perf_counter()
    with TestPipeline() as p:  # a difference fails the run (the assert_that raises)
        out = p | beam.Create(records) | ClusterImages(args.k)
        assert_that(out["clusters"], equal_to([expected]))
    seconds = time.perf_counter() - t0
    return {
        "beam_n": n,
        "beam_seconds": round(seconds, 1),
        "beam_clusters": sum(expected["sizes"].values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dup-fraction", type=float, default=0.10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beam-n", type=int, default=20_000, help="0: skip the Beam run")
    args = ap.parse_args()
    fig: dict[str, Any] = {"n": args.n, "dup_fraction": args.dup_fraction, "k": args.k}

    images = synthetic_images(args.n, args.dup_fraction, args.k, args.seed)
    t0 = time.perf_counter()
    pairs = hamming.near_duplicate_pairs(images["hashes"], args.k)
    fig["search_seconds"] = round(time.perf_counter() - t0, 1)
    edges = shaped_edges(images, pairs)
    del pairs
    fig["edges"] = len(edges)
    fig["images_planted_in_clusters"] = sum(len(c) for c in images["clusters"])

    coder = coders.FastPrimitivesCoder()
    encoded = [coder.encode(e) for e in edges]
    del edges
    fig["edges_encoded_bytes"] = sum(len(b) for b in encoded)
    gathered, held, _ = traced(decode_all, coder, encoded)
    del encoded
    fig["edges_list_bytes"] = held
    fig["bytes_per_edge"] = round(held / max(1, len(gathered)), 1)

    times = []
    for _ in range(3):  # the fastest of three: the machine may be shared
        t0 = time.perf_counter()
        clusters = image_clusters(gathered)
        times.append(time.perf_counter() - t0)
        del clusters
    fig["cluster_seconds"] = round(min(times), 2)
    _, _, peak = traced(image_clusters, gathered)
    fig["cluster_peak_bytes"] = held + peak  # the edge list is held while it runs
    clusters = image_clusters(gathered)
    fig["images_in_clusters"] = len(clusters["canonical"])
    fig["image_clusters"] = sum(clusters["sizes"].values())
    canonical_encoded = coder.encode(clusters)
    fig["canonical_encoded_bytes"] = len(canonical_encoded)
    del clusters, gathered
    _, fig["canonical_bytes"], _ = traced(coder.decode, canonical_encoded)
    del canonical_encoded

    decisions = decisions_for(images)
    encoded = [coder.encode(d) for d in decisions]
    fig["decisions"] = len(decisions)
    fig["decisions_encoded_bytes"] = sum(len(b) for b in encoded)
    del decisions
    _, fig["decisions_dict_bytes"], _ = traced(decode_dict, coder, encoded)
    del encoded
    fig["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.beam_n:
        fig.update(run_beam(args.beam_n, args))

    mb = 1 << 20
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, numpy {np.__version__}"
    )
    print(
        f"{args.n:,} images, {fig['images_planted_in_clusters']:,} planted in near-duplicate "
        f"clusters ({args.dup_fraction:.0%}), k = {args.k}"
    )
    print(f"banded search (the distributed part, in memory): {fig['search_seconds']} s")
    print(
        f"edges gathered in one worker: {fig['edges']:,}, {fig['edges_encoded_bytes'] / mb:.1f}"
        f" MB encoded, {fig['edges_list_bytes'] / mb:.1f} MB as the list"
        f" ({fig['bytes_per_edge']} bytes per edge)"
    )
    print(
        f"image_clusters on them: {fig['cluster_seconds']} s, peak"
        f" {fig['cluster_peak_bytes'] / mb:.1f} MB with the list; {fig['image_clusters']:,}"
        f" clusters, {fig['images_in_clusters']:,} images"
    )
    print(
        f"canonical map (side input of every worker): "
        f"{fig['canonical_encoded_bytes'] / mb:.1f} MB encoded, "
        f"{fig['canonical_bytes'] / mb:.1f} MB in memory"
    )
    print(
        f"decisions (AsDict side input): {fig['decisions']:,}, "
        f"{fig['decisions_encoded_bytes'] / mb:.1f} MB encoded, "
        f"{fig['decisions_dict_bytes'] / mb:.1f} MB in memory"
    )
    print(f"process max RSS: {fig['max_rss_mb']} MB")
    ratio = fig["cluster_seconds"] / fig["search_seconds"]
    print(f"ratio one-worker clustering / banded search (this run): {ratio:.3f}")
    if args.beam_n:
        print(
            f"ClusterImages on the DirectRunner, {args.beam_n:,} records: "
            f"{fig['beam_seconds']} s, its clusters equal image_clusters' (checked)"
        )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
