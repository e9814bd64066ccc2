"""Does mmloom's fast pHash path give the same hash as imagehash on a full decode?

The fast path decodes JPEGs at reduced scale (Pillow's draft mode, DCT scaling, never below
``DRAFT_MIN_SIDE`` px on the short side) and box-reduces before the 32x32 Lanczos resize
(``REDUCING_GAP``); the exact path is ``imagehash.phash`` on the full decode.

Issue 3 asks to use draft decoding for pHash only if, on real photographs, it yields the same
64-bit hash within Hamming distance <= 2 on at least 99% of images. This script measures it.

Real photographs, offline: the sample photos that ship inside the scikit-image, scikit-learn
and matplotlib wheels (astronaut, chelsea, coffee, motorcycles, rocket, retina, Hubble deep
field, brick, grass, gravel, coins, moon, china, flower, Grace Hopper...). From each, the script
cuts many random crops at random scales (long side 300-2000 px) and saves them as JPEG at
quality 70-95, giving N test images of real photographic content at web-typical sizes. For each
it compares the exact hash (``inspect_image`` with draft off, asserted equal to
``imagehash.phash`` of the full decode) with the fast path's hash (draft on).

    pip install scikit-image scikit-learn matplotlib   # (the [bench] extra)
    python bench/phash_draft.py [--n 1000]
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import time
from collections import Counter
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import pipelines.images as images_mod
from pipelines.images import ImageLimits, inspect_image

PHOTO_NAMES = {
    "skimage": [
        "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
        "grass.png", "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png",
        "motorcycle_right.png", "retina.jpg", "rocket.jpg",
    ],
    "sklearn": ["china.jpg", "flower.jpg"],
    "matplotlib": ["grace_hopper.jpg"],
}  # fmt: skip


def photo_paths() -> list[str]:
    found = []
    for pkg, names in PHOTO_NAMES.items():
        try:
            mod = __import__(pkg)
        except ImportError:
            continue
        root = os.path.dirname(mod.__file__)
        for name in names:
            found += glob.glob(f"{root}/**/{name}", recursive=True)[:1]
    return sorted(found)


def test_images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in photo_paths()]
    if not photos:
        raise SystemExit("no sample photographs found: pip install scikit-image scikit-learn")
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw = int(rng.integers(max(64, w // 4), w + 1))
        ch = int(rng.integers(max(64, h // 4), h + 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch))
        long_side = int(rng.integers(300, 2001))
        scale = long_side / max(cw, ch)
        crop = crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BICUBIC)
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=int(rng.integers(70, 96)))
        yield buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument(
        "--draft-min-side",
        type=int,
        nargs="*",
        default=[images_mod.DRAFT_MIN_SIDE],
        help="draft floors to compare (mmloom's default is DRAFT_MIN_SIDE)",
    )
    args = ap.parse_args()
    for floor in args.draft_min_side:
        images_mod.DRAFT_MIN_SIDE = floor
        print(
            f"--- draft floor {floor} px (decode at the largest 1/2, 1/4, 1/8 scale "
            f"whose short side stays >= {floor})"
        )
        measure(args.n)


def measure(n_images: int) -> None:
    no_gate = {"check_size": False, "max_pixels": 10**9}
    dist = Counter()
    t_full = t_draft = 0.0
    sizes = []
    for data in test_images(n_images):
        t0 = time.perf_counter()
        full = inspect_image(data, "x", ImageLimits.defaults(draft_decode=False, **no_gate)).phash
        t1 = time.perf_counter()
        draft = inspect_image(data, "x", ImageLimits.defaults(draft_decode=True, **no_gate)).phash
        t2 = time.perf_counter()
        t_full += t1 - t0
        t_draft += t2 - t1
        with Image.open(io.BytesIO(data)) as im:
            sizes.append(max(im.size))
            reference = str(imagehash.phash(im.convert("RGB")))
        assert reference == full, "mmloom's full-decode hash must equal imagehash.phash"
        dist[bin(int(full, 16) ^ int(draft, 16)).count("1")] += 1
    n = sum(dist.values())
    within2 = sum(c for d, c in dist.items() if d <= 2) / n
    print(
        f"photographs: {len(photo_paths())} real photos -> {n} JPEG crops, "
        f"long side {min(sizes)}-{max(sizes)} px (median {int(np.median(sizes))})"
    )
    print(
        "Hamming distance draft vs full decode: "
        + ", ".join(f"{d}: {c}" for d, c in sorted(dist.items()))
    )
    print(f"share within distance <= 2: {within2:.4f} (needed: >= 0.99)")
    print(
        f"hash time per image: full decode {1000 * t_full / n:.2f} ms, "
        f"draft {1000 * t_draft / n:.2f} ms, ratio full/draft {t_full / t_draft:.2f}x"
    )


if __name__ == "__main__":
    main()
