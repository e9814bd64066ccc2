"""Build ``sample/mathvista/``: real MathVista testmini records + generated stand-in images.

Copies, byte for byte, the real records in ``../shared/samples/mathvista/`` (GitHub layout:
``testmini_slice.json`` -> ``testmini.json``, ``query_slice.json`` -> ``query.json``,
``source.json``) when that folder is present, then writes one deterministic JPEG per problem
at ``images/<pid>.jpg`` (the path each record names) with ``tools.sample_images.make_image``.
Each image keeps the aspect of the record's ``metadata.img_width`` / ``img_height``, scaled
down so that its long side is at most ``MAX_SIDE`` px (never scaled up).

    .venv/bin/python -m tools.make_sample_mathvista            # re-runnable, deterministic
    .venv/bin/python -m tools.make_sample_mathvista --shared /path/to/samples/mathvista
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tools.sample_images import make_image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "sample" / "mathvista"
SHARED = REPO.parent / "shared" / "samples" / "mathvista"
COPIES = {
    "testmini_slice.json": "testmini.json",
    "query_slice.json": "query.json",
    "source.json": "source.json",
}
MAX_SIDE = 400


def image_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) with the same aspect, long side capped at ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="real MathVista sample files")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.shared.is_dir():
        for src, dst in COPIES.items():
            shutil.copyfile(args.shared / src, args.out / dst)
    problems = json.loads((args.out / "testmini.json").read_text("utf-8"))
    images = args.out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir()
    for pid, problem in problems.items():
        meta = problem["metadata"]
        width, height = image_size(int(meta["img_width"]), int(meta["img_height"]))
        data = make_image(f"mathvista/{pid}", width, height, "JPEG", label=f"MathVista {pid}")
        target = args.out / problem["image"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"wrote {len(problems)} problems and images to {args.out}")


if __name__ == "__main__":
    main()
