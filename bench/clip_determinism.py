"""Does a CLIP embedding depend on its batch, and what does the fixed forward shape cost?

    .venv/bin/python bench/clip_determinism.py                          # CPU, about a minute
    .venv/bin/python bench/clip_determinism.py --models ViT-B-32 --batches 1,3,8,16,64

For each model (random weights unless it is the tiny sample model; the question is about
kernels, not weights) on the device the pipeline would pick:

* dependence: the same image embedded as row 0 of batches of each size, in ONE forward pass
  of that size (what the handler did before) and through ``ClipModel.embed`` (passes of
  ``forward_rows`` rows, the last padded); the largest difference from the batch-of-1 result
  and whether every batch gave the same bits;
* cost: model-only images/s at each batch size, one pass of the batch's size vs fixed-shape
  passes (padding rows are computed and thrown away).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.clip.model import ClipModel, ClipSpec, ImagePreprocessor, preprocess_config
from pipelines.clip.tiny import TINY_MODEL_NAME
from tools.sample_images import make_image

TINY_CHECKPOINT = Path(__file__).resolve().parent.parent / "out/models/mmloom-tiny-clip.safetensors"


def embed_image0(clip: ClipModel, batch: np.ndarray, fixed: bool) -> np.ndarray:
    rows = clip.forward_rows
    if not fixed:
        clip.forward_rows = len(batch)  # one pass of the batch's own size
    try:
        return clip.embed(batch, None)[0][0]
    finally:
        clip.forward_rows = rows


def rate(clip: ClipModel, batch: np.ndarray, fixed: bool, seconds: float) -> float:
    embed_image0(clip, batch, fixed)  # warm-up
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        embed_image0(clip, batch, fixed)
        n += len(batch)
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=f"{TINY_MODEL_NAME},ViT-B-32")
    parser.add_argument("--batches", default="1,3,8,16,32")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per measurement")
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batches.split(",")]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in args.models.split(","):
        tiny = name == TINY_MODEL_NAME
        spec = ClipSpec(name, None, str(TINY_CHECKPOINT) if tiny else None, args.device, "auto")
        clip = ClipModel(spec)
        pre = ImagePreprocessor(preprocess_config(spec))
        images = np.stack([pre(make_image(f"det-{i}")) for i in range(max(sizes))])
        print(f"\n{name} on {clip.device} (forward_rows {clip.forward_rows})")
        print(f"{'batch':>5} {'one pass: max|diff|':>19} {'fixed: max|diff|':>16}", end="")
        print(f" {'one pass img/s':>14} {'fixed img/s':>11} {'cost':>6}")
        ref = {f: embed_image0(clip, images[:1], f) for f in (False, True)}
        for size in sizes:
            batch = images[:size]
            diff = {f: float(np.abs(embed_image0(clip, batch, f) - ref[f]).max()) for f in ref}
            r = {f: rate(clip, batch, f, args.seconds) for f in ref}
            print(
                f"{size:5d} {diff[False]:19.2e} {diff[True]:16.2e} {r[False]:14.1f} "
                f"{r[True]:11.1f} {r[False] / r[True]:5.2f}x"
            )
    print("\nmax|diff|: largest difference from the same image embedded alone (0 = same bits).")
    print("cost: one-pass rate / fixed-shape rate (1.00x = free).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
