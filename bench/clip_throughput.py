"""CLIP scoring throughput: end to end vs model only vs the device's FLOP ceiling.

    .venv/bin/python bench/clip_throughput.py                       # CPU: a few minutes
    .venv/bin/python bench/clip_throughput.py --images 4096 --batch 256   # on a GPU machine

For ViT-B-32 and ViT-L-14 with RANDOM weights (no hub access; speed does not depend on the
weights), on the device the pipeline would pick (CUDA when present, bf16 autocast there):

* end to end: read JPEG bytes from files -> decode + resize/crop (``ImagePreprocessor``, on
  ``--workers`` CPU threads) -> embed images and texts (``ClipModel.embed``, the code path of
  ``OpenClipModelHandler``) -> cosine per pair;
* model only: the same image embedding on already-preprocessed uint8 batches;
* the FLOP ceiling: image-tower FLOPs per image (counted with ``torch.utils.flop_counter`` in
  this run) x images/s / the peak of a large matrix product measured in this run on the same
  device and dtype (fp32 on CPU, bf16 on GPU).

Everything printed as images/s and ratios, with device and date. Beam's own overhead (the
join, serialisation between stages) is not included: this measures the stage's compute path.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.clip.model import ClipModel, ClipSpec, ImagePreprocessor, preprocess_config
from tools.sample_images import make_image

CPU_SECONDS = 30
MAX_CPU_IMAGES = 256


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs)"


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype_name: str) -> float:
    """Best FLOP/s of a square matrix product on ``device`` (fp32 on CPU, bf16 on GPU)."""
    import torch

    n = 8192 if device == "cuda" else 2048
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device == "cuda" else 3
    best = float("inf")
    with torch.inference_mode():
        a @ b
        sync(device)
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync(device)
            best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n**3 / best


def image_flops(clip: ClipModel) -> float:
    """FLOPs of the image tower for one image (2 x multiply-adds, as open_clip's profile)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = tuple(clip.model.visual.preprocess_cfg["size"])
    x = torch.zeros(1, 3, h, w, device=clip.device)
    # with gradients enabled, so nn.MultiheadAttention takes its counted (non-fused) path
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        clip.model.encode_image(x)
    return float(counter.get_total_flops())


def run_model(name: str, files: list[str], args, device: str, peak: float) -> dict:
    import open_clip

    spec = ClipSpec(
        model=name, pretrained=None, checkpoint=None, device=args.device, precision="auto"
    )
    t = time.perf_counter()
    clip = ClipModel(spec)  # random weights: pretrained None, no checkpoint
    load_s = time.perf_counter() - t
    pre = ImagePreprocessor(preprocess_config(spec))
    flops = image_flops(clip)
    # CPU default: about CPU_SECONDS of model time per phase, assuming 15% of the matmul peak
    n = args.images or int(np.clip(CPU_SECONDS * 0.15 * peak / flops, 8, len(files)))
    files = files[:n]
    batch = min(args.batch, n)
    texts = open_clip.get_tokenizer(name)([f"a photo of thing {i}" for i in range(n)]).numpy()

    # model only: preprocessed uint8 batches already in memory
    with open(files[0], "rb") as f:
        one = pre(f.read())
    ready = np.stack([one] * batch)
    clip.embed(ready[:batch], None)  # warm-up
    sync(device)
    t = time.perf_counter()
    for start in range(0, n, batch):
        clip.embed(ready[: min(batch, n - start)], None)
    sync(device)
    model_rate = n / (time.perf_counter() - t)

    # end to end: read -> decode/resize on worker threads -> embed images + texts -> score
    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return pre(f.read())

    t = time.perf_counter()
    scores = []
    with ThreadPoolExecutor(args.workers) as pool:
        chunks = [files[s : s + batch] for s in range(0, n, batch)]
        pending = pool.map(load, chunks[0]) if chunks else None
        for i, _chunk in enumerate(chunks):
            images = np.stack(list(pending))
            if i + 1 < len(chunks):  # decode the next batch while this one is embedded
                pending = pool.map(load, chunks[i + 1])
            s = i * batch
            img, txt = clip.embed(images, texts[s : s + len(images)])
            scores.append(np.einsum("ij,ij->i", img, txt))
    sync(device)
    e2e_rate = n / (time.perf_counter() - t)
    scores = np.concatenate(scores)
    assert len(scores) == n and np.all(np.abs(scores) <= 1.0001)
    return {
        "model": name,
        "load_s": load_s,
        "flops": flops,
        "images": n,
        "model_rate": model_rate,
        "e2e_rate": e2e_rate,
        "autocast": str(clip.dtype).replace("torch.", "") if clip.dtype else "fp32",
    }


def main(argv: list[str] | None = None) -> int:
    import open_clip
    import torch

    from pipelines.clip.model import resolve_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="ViT-B-32,ViT-L-14")
    parser.add_argument(
        "--images", type=int, default=0, help="images per model (default: 64 CPU, 4096 GPU)"
    )
    parser.add_argument("--batch", type=int, default=0, help="batch (default: 16 CPU, 256 GPU)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--size", default="640x480", help="source JPEG size (COCO-like)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device == "cuda"
    if gpu and not args.images:
        args.images = 4096
    n_files = args.images or MAX_CPU_IMAGES
    args.batch = args.batch or (256 if gpu else 16)
    w, h = (int(v) for v in args.size.split("x"))

    print(f"# CLIP throughput  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"device: {device} - {device_name(device)}; torch {torch.__version__}, "
        f"open_clip {open_clip.__version__}, torch threads {torch.get_num_threads()}, "
        f"decode threads {args.workers}"
    )
    peak_dtype = "bf16" if gpu else "fp32"
    peak = matmul_peak(device, peak_dtype)
    print(f"measured matmul peak ({peak_dtype}): {peak / 1e12:.3f} TFLOP/s")

    with tempfile.TemporaryDirectory(prefix="mmloom-clip-bench-") as folder:
        files = []
        distinct = 64
        blobs = [make_image(f"bench-{i}", w, h) for i in range(distinct)]
        for i in range(n_files):
            path = os.path.join(folder, f"{i:06d}.jpg")
            with open(path, "wb") as f:
                f.write(blobs[i % distinct])
            files.append(path)
        print(
            f"JPEGs of {w}x{h} ({np.mean([len(b) for b in blobs]) / 1e3:.0f} kB avg), "
            f"batch up to {args.batch}"
        )
        print()
        header = (
            f"{'model':10} {'autocast':8} {'images':>6} {'GFLOP/img':>9} {'e2e img/s':>10} "
            f"{'model img/s':>11} {'e2e/model':>9} {'e2e/peak':>8} {'model/peak':>10}"
        )
        print(header)
        for name in args.models.split(","):
            r = run_model(name, files, args, device, peak)
            print(
                f"{r['model']:10} {r['autocast']:8} {r['images']:6d} {r['flops'] / 1e9:9.1f} "
                f"{r['e2e_rate']:10.2f} "
                f"{r['model_rate']:11.2f} {r['e2e_rate'] / r['model_rate']:9.2f} "
                f"{r['flops'] * r['e2e_rate'] / peak:8.3f} "
                f"{r['flops'] * r['model_rate'] / peak:10.3f}"
            )
    print()
    print(
        "e2e/model: end-to-end rate over model-only rate on the same device (1.0 = decoding is "
        "hidden); */peak: achieved image-tower FLOP/s over the measured matmul peak."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
