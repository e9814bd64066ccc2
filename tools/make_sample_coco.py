"""Build sample/coco/: real COCO 2017 val annotation records plus synthetic stand-in images.

    .venv/bin/python -m tools.make_sample_coco [--shared ../shared/samples/coco]

* ``annotations/captions_val2017.json`` and ``annotations/instances_val2017.json`` are byte
  copies of ``captions_val2017_mini.json`` and ``instances_val2017_mini_subset.json`` from the
  shared samples (real, unmodified official records; see sample/coco/SOURCE.md). When the
  shared folder is not there, the copies already in sample/coco/annotations are kept.
* ``val2017/<file_name>``: one JPEG per image of the captions file, at the image's real
  width and height, made by ``tools.sample_images.make_image`` seeded by the file name, so
  re-running gives the same bytes. Stale JPEGs in val2017/ are removed.

Deterministic and re-runnable; writes nothing outside sample/coco/.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tools.sample_images import make_image

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "sample" / "coco"
COPIES = {
    "captions_val2017_mini.json": "annotations/captions_val2017.json",
    "instances_val2017_mini_subset.json": "annotations/instances_val2017.json",
}
MAX_TOTAL_BYTES = 1_500_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "samples" / "coco"))
    args = parser.parse_args(argv)
    shared = Path(args.shared)

    (OUT / "annotations").mkdir(parents=True, exist_ok=True)
    for src, dst in COPIES.items():
        if (shared / src).is_file():
            shutil.copyfile(shared / src, OUT / dst)
        elif not (OUT / dst).is_file():
            raise SystemExit(f"{shared / src} is missing and {OUT / dst} does not exist yet")

    captions = json.loads((OUT / COPIES["captions_val2017_mini.json"]).read_text("utf-8"))
    images_dir = OUT / "val2017"
    images_dir.mkdir(exist_ok=True)
    wanted = set()
    for im in captions["images"]:
        name = im["file_name"]
        wanted.add(name)
        data = make_image(name, im["width"], im["height"], "JPEG", label=f"COCO val2017 {im['id']}")
        (images_dir / name).write_bytes(data)
    for path in images_dir.glob("*.jpg"):
        if path.name not in wanted:
            path.unlink()

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(wanted)} images; sample/coco is {total:,} bytes")
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"sample/coco is {total:,} bytes, over {MAX_TOTAL_BYTES:,}")


if __name__ == "__main__":
    main()
