"""Write a tiny open_clip checkpoint (``mmloom-tiny-clip``) for tests and CPU smoke runs.

    python tools/make_tiny_clip.py --output /tmp/tiny-clip.safetensors
    python tools/make_tiny_clip.py --output /tmp/random.safetensors --no-fit

The model is the architecture in ``pipelines/clip/tiny.py`` with seeded random weights; the
file is a plain ``.safetensors`` state dict, loaded by the pipeline exactly like real weights
(``open_clip.create_model_and_transforms("mmloom-tiny-clip", pretrained=<file>)``).

By default the image tower is then *constructed* (not trained; a few seconds of CPU) so that
crops and re-renders of a picture embed close together while different pictures do not:

1. the transformer stays random; only the head after it is set. Its pooled features (the
   average of the layer-normalised patch tokens: a bag of random nonlinear patch features,
   little changed by cropping or mirroring) are computed for ``--fit-images`` synthetic
   pictures (``tools/sample_images.make_image``, seeds ``fit-<i>``, never the test seeds),
   each in ``--views`` versions: the original and random crops, mirrors, rescales, gamma
   changes and JPEG re-encodes, all preprocessed like inference;
2. ``ln_post``'s bias is set to minus the mean feature (so embeddings are centred and
   unrelated pictures are near orthogonal), and ``proj`` to the directions that separate
   pictures best relative to how much a picture's own versions vary (Fisher's linear
   discriminant: generalised eigenvectors of between- vs within-picture scatter), each
   scaled by the square root of its eigenvalue.

The text tower keeps its random weights: test scores are numbers in [-1, 1], not meaning.
Deterministic for a given seed, torch build and thread count.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.clip.tiny import TINY_MODEL_NAME, register_model_configs
from tools.sample_images import make_image

RIDGE = 1e-4


def augment(im, rnd: random.Random):
    """A crop / mirror / rescale / gamma / JPEG re-encode of a PIL image."""
    from PIL import Image

    w0, h0 = im.size
    area, aspect = rnd.uniform(0.4, 1.0), rnd.uniform(0.75, 1.33)
    w = min(w0, max(16, int(w0 * (area * aspect) ** 0.5)))
    h = min(h0, max(16, int(h0 * (area / aspect) ** 0.5)))
    x0, y0 = rnd.randint(0, w0 - w), rnd.randint(0, h0 - h)
    out = im.crop((x0, y0, x0 + w, y0 + h))
    if rnd.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    scale = rnd.uniform(0.5, 1.2)
    out = out.resize((max(16, int(w * scale)), max(16, int(h * scale))), Image.Resampling.BILINEAR)
    gamma = rnd.uniform(0.8, 1.25)
    out = out.point([int(255 * (v / 255) ** gamma) for v in range(256)] * 3)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rnd.randint(30, 90))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def fit_image_head(model, preprocess, n_images: int, views: int, seed: int) -> None:
    """Set ``visual.ln_post`` and ``visual.proj`` as described in the module docstring."""
    import torch
    from PIL import Image

    rnd = random.Random(seed)
    visual = model.visual
    sizes = [(256, 192), (320, 240), (200, 160), (240, 240)]
    batch, labels = [], []
    for i in range(n_images):
        w, h = rnd.choice(sizes)
        im = Image.open(io.BytesIO(make_image(f"fit-{i}", w, h))).convert("RGB")
        for v in range(views):
            batch.append(preprocess(im if v == 0 else augment(im, rnd)))
            labels.append(i)
    x = torch.stack(batch)
    label = torch.tensor(labels)
    proj = visual.proj
    with torch.no_grad():
        visual.ln_post.weight.fill_(1.0)
        visual.ln_post.bias.zero_()
        visual.proj = None  # pooled features before the projection
        feats = torch.cat([model.encode_image(x[i : i + 256]) for i in range(0, len(x), 256)])
        visual.proj = proj
        f = feats.double()
        mean = f.mean(0)
        centred = f - mean
        class_means = torch.stack([centred[label == i].mean(0) for i in range(n_images)])
        within = centred - class_means[label]
        width = f.shape[1]
        s_w = within.T @ within / len(f) + RIDGE * torch.eye(width, dtype=torch.float64)
        s_b = class_means.T @ class_means / n_images
        ew, uw = torch.linalg.eigh(s_w)
        whiten = uw @ torch.diag(ew.clamp_min(1e-12).rsqrt()) @ uw.T
        lam, u = torch.linalg.eigh(whiten @ s_b @ whiten)
        lam, u = lam.flip(0), u.flip(1)
        k = min(proj.shape[1], width)
        directions = (whiten @ u[:, :k]) * lam[:k].clamp_min(0).sqrt()
        new_proj = torch.zeros_like(proj, dtype=torch.float64)
        new_proj[:, :k] = directions
        visual.ln_post.bias.copy_(-mean)
        proj.copy_(new_proj.to(proj.dtype))


def make_tiny_clip(
    output: str | Path, seed: int = 0, fit: bool = True, fit_images: int = 256, views: int = 6
) -> Path:
    """Create, optionally fit, and save the tiny model; returns the checkpoint path."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    register_model_configs()
    torch.manual_seed(seed)
    np.random.seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL_NAME)
    model.eval()
    if fit:
        fit_image_head(model, preprocess, fit_images, views, seed)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(output))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="checkpoint to write (.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fit", action="store_true", help="random weights only")
    parser.add_argument("--fit-images", type=int, default=256)
    parser.add_argument("--views", type=int, default=6)
    args = parser.parse_args(argv)
    if not args.output.endswith(".safetensors"):
        parser.error("--output must end in .safetensors")
    path = make_tiny_clip(args.output, args.seed, not args.no_fit, args.fit_images, args.views)
    print(
        f"wrote {path} (model {TINY_MODEL_NAME}; use clip.model: {TINY_MODEL_NAME}, "
        f"clip.checkpoint: {path})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
