"""Deterministic synthetic images for the bundled sample data and tests.

The sample folders ship real-format metadata but no real photographs (the sources do not
allow redistribution, and the repository must stay small). These images stand in for
them: smooth gradients with a few shapes and a label, seeded by a string so that the same
seed always gives the same bytes. Sizes default to at least 150 px per side so that the
image-quality gates (min side 150, aspect <= 3) accept them.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw


def make_image(
    seed: str, width: int = 256, height: int = 192, fmt: str = "JPEG", label: str | None = None
) -> bytes:
    """Return encoded image bytes (``fmt``: JPEG or PNG) that depend only on the arguments."""
    rnd = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    c1 = tuple(rnd.randrange(40, 216) for _ in range(3))
    c2 = tuple(rnd.randrange(40, 216) for _ in range(3))
    grad = Image.linear_gradient("L").resize((width, height))
    im = Image.composite(
        Image.new("RGB", (width, height), c1), Image.new("RGB", (width, height), c2), grad
    )
    draw = ImageDraw.Draw(im)
    for _ in range(rnd.randrange(2, 5)):
        x0, y0 = rnd.randrange(0, width * 3 // 4), rnd.randrange(0, height * 3 // 4)
        x1 = x0 + rnd.randrange(width // 8, width // 3)
        y1 = y0 + rnd.randrange(height // 8, height // 3)
        colour = tuple(rnd.randrange(0, 256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    if label:
        draw.text((6, 6), label[:40], fill=(255, 255, 255))
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        im.save(buf, "JPEG", quality=70, optimize=True)
    else:
        im.save(buf, fmt.upper(), optimize=True)
    return buf.getvalue()
