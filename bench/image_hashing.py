"""Images per second per core: mmloom's integrity + sha256 + pHash stage vs a plain decode.

For each size (640x480, 1024x768, 1920x1080), N JPEG images (quality 90) cut from real
photographs (the ones bundled in scikit-image / scikit-learn / matplotlib, see
bench/phash_draft.py; generated pictures if those packages are missing) are processed on one
core by:

* baseline: ``Image.open(...).load()``, a plain full Pillow decode;
* mmloom: ``hashlib.sha256`` + ``inspect_image`` (header checks, EXIF, decode under limits
  (draft scale for JPEG), size/aspect gates, pHash), i.e. the work ``LoadImages`` does per
  image once the bytes are read;
* mmloom with draft decoding switched off (full decode + pHash), for reference.

The goal (issue 3): hashing costs no more than 1.2 x the decode alone, i.e. a time ratio
mmloom / decode <= 1.2.

    python bench/image_hashing.py [--n 200]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from bench.phash_draft import photo_paths
from pipelines.images import ImageLimits, inspect_image
from tools.sample_images import make_image

SIZES = [(640, 480), (1024, 768), (1920, 1080)]


def images(n: int, size: tuple[int, int], seed: int = 0) -> tuple[list[bytes], str]:
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in photo_paths()]
    out = []
    for i in range(n):
        if not photos:
            out.append(make_image(f"hash-{i}", *size))
            continue
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw = int(rng.integers(w // 2, w + 1))
        ch = min(h, round(cw * size[1] / size[0]))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch)).resize(size, Image.BICUBIC)
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out, ("crops of real photographs" if photos else "generated pictures")


def rate(fn, data: list[bytes], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for d in data:
            fn(d)
        best = min(best, time.perf_counter() - t0)
    return len(data) / best


def decode(d: bytes) -> None:
    with Image.open(io.BytesIO(d)) as im:
        im.load()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    draft, full = ImageLimits.defaults(), ImageLimits.defaults(draft_decode=False)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (one used), "
        f"Pillow {Image.__version__}"
    )
    for size in SIZES:
        data, kind = images(args.n, size)
        base = rate(decode, data)
        mm = rate(lambda d: (hashlib.sha256(d).digest(), inspect_image(d, "b", draft)), data)
        mm_full = rate(lambda d: (hashlib.sha256(d).digest(), inspect_image(d, "b", full)), data)
        print(
            f"{size[0]}x{size[1]} ({args.n} {kind}, {sum(map(len, data)) // args.n // 1024} KB): "
            f"decode {base:.0f} img/s | mmloom {mm:.0f} img/s, time ratio {base / mm:.2f} | "
            f"without draft {mm_full:.0f} img/s, time ratio {base / mm_full:.2f}"
        )


if __name__ == "__main__":
    main()
