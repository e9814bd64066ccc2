"""Synthetic corpora in the five sources' published formats, for ``bench/scale.py``.

``generate(root, n, ...)`` writes N items in MMIE's mix (docs/source-formats.md §0):

* SA, 25% of N: VIST SIS stories, ``sis/{train,val,test}.story-in-sequence.json`` (80/10/10),
  5 distinct photos per story at ``images/<split>/<photo_flickr_id>.jpg``, two stories per
  album;
* PBL, 57% of N: wikiHow (VGSI) methods, ``WikihowText_data.json`` (JSON Lines, one article of
  1-3 methods per line), 3-8 steps per method, one image per step at
  ``wiki_images/<step_id>.jpg`` (VGSI names them ``.png``; the reader resolves by stem, and
  these are JPEG photos, so they carry the JPEG extension);
* MSR, the remaining 18%: half MathVista (GitHub layout: ``testmini.json`` + ``query.json`` +
  ``images/<pid>.jpg``, one image each, built on the 33 real testmini records of
  ``sample/mathvista``), half ReMI (``remi/test.parquet`` in the HF layout, embedded image
  bytes, 100 rows per row group, each row with its task's image count, 2-6, as in
  ``tools/make_sample_remi.py``);
* IF on top, 5% of N: COCO 2017 val (``annotations/captions_val2017.json`` +
  ``instances_val2017.json`` + ``val2017/<id:012d>.jpg``), built on the real records of
  ``sample/coco`` with boxes and polygons scaled to the picture size.

Every text is distinct per item (random words from the samples' vocabulary, so the text
dedupe's word 5-gram Jaccard stays near 0), and every picture is a distinct photo-sized JPEG:
a random multi-octave colour field (its own low-frequency structure, so its pHash is random
and far from every other one) plus one of eight pre-made grain textures (so the JPEG has a
photo's size: ~270 KB at 1280x960, quality 85). Item ``k`` of a source is the same at any N,
so a larger corpus grows the smaller one in place: only new pictures are made.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import multiprocessing
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageChops, ImageFilter

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample"

SA_SHARE, PBL_SHARE = 0.25, 0.57  # MSR is the rest (MMIE: 25 / 57 / 18 %)
REMI_SHARE_OF_MSR = 0.5
IF_SHARE = 0.05  # on top of N
VIST_SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
STORY = 5
WIKIHOW_STEPS = (3, 8)
WIKIHOW_METHODS = (1, 3)
REMI_ROWS_PER_GROUP = 100  # the HF writer's row groups for image datasets
SEED = "mmloom-scale"


# ------------------------------------------------------------------------------- the mix


@dataclass(frozen=True)
class Mix:
    """Items per source for N (SA + PBL + MSR = N; IF on top)."""

    vist: int
    wikihow: int
    mathvista: int
    remi: int
    coco: int

    @classmethod
    def for_n(cls, n: int, if_share: float = IF_SHARE) -> Mix:
        sa, pbl = round(n * SA_SHARE), round(n * PBL_SHARE)
        msr = n - sa - pbl
        remi = round(msr * REMI_SHARE_OF_MSR)
        return cls(sa, pbl, msr - remi, remi, round(n * if_share))

    def total(self) -> int:
        return self.vist + self.wikihow + self.mathvista + self.remi + self.coco

    def scaled(self, limit: int) -> Mix:
        """At most ``limit`` items in all, in the same proportions (for the plain loop)."""
        if self.total() <= limit:
            return self
        f = limit / self.total()
        return Mix(*(max(1, round(v * f)) for v in asdict(self).values()))


# ------------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class ImageSpec:
    width: int = 1280
    height: int = 960
    quality: int = 85


_TEXTURES: dict[tuple[int, int], list[Image.Image]] = {}
_N_TEXTURES = 8
_GRAIN = 13.0  # texture amplitude: sets the JPEG size (~270 KB at 1280x960, q85)


def _textures(width: int, height: int) -> list[Image.Image]:
    """Eight grain textures (signed, stored mod 256), made once per process."""
    key = (width, height)
    if key not in _TEXTURES:
        out = []
        for s in range(_N_TEXTURES):
            r = np.random.default_rng(1000 + s)
            noise = r.normal(0, 0.45, (height, width, 3)).astype(np.float32)
            noise += r.normal(0, 1, (height, width, 1)).astype(np.float32)
            grey = np.clip(128 + noise * _GRAIN, 88, 168).astype(np.uint8)
            blurred = Image.fromarray(grey, "RGB").filter(ImageFilter.GaussianBlur(0.6))
            signed = (np.asarray(blurred).astype(np.int16) - 128).astype(np.uint8)
            out.append(Image.fromarray(signed, "RGB"))
        _TEXTURES[key] = out
    return _TEXTURES[key]


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _resize_field(g: np.ndarray, w: int, h: int) -> np.ndarray:
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(g[:, :, c], dtype=np.float32), "F").resize(
                (w, h), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.stack(chans, -1)


def make_photo(seed: str, spec: ImageSpec) -> bytes:
    """A distinct photo-like JPEG for ``seed``.

    A random colour field of four octaves (3x4 up to 24x32 control points, so the 8x8 DCT
    behind the pHash is random), drawn at a quarter of the size and enlarged, plus one of
    eight grain textures made once per process (what gives the JPEG a photo's size). About
    15 ms per 1280x960 picture on one idle core, most of it the JPEG encoder.
    """
    r = np.random.default_rng(_seed(seed))
    g = r.normal(0, 60, (3, 4, 3))
    for gh, gw, amp in ((6, 8, 35.0), (12, 16, 20.0), (24, 32, 12.0)):
        g = _resize_field(g, gw, gh) + r.normal(0, amp, (gh, gw, 3))
    g = g * 0.8 + 128 + r.uniform(-25, 25, 3)
    sw, sh = (spec.width + 3) // 4, (spec.height + 3) // 4
    small = Image.fromarray(np.clip(g, 40, 215).astype(np.uint8), "RGB")
    base = small.resize((sw, sh), Image.Resampling.BICUBIC).resize(
        (sw * 4, sh * 4), Image.Resampling.NEAREST
    )
    textures = _textures(sw * 4, sh * 4)
    # base is within [40, 215] and the grain within +-40, so the modulo add never wraps
    im = ImageChops.add_modulo(base, textures[int(r.integers(len(textures)))])
    if im.size != (spec.width, spec.height):
        im = im.crop((0, 0, spec.width, spec.height))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=spec.quality)
    return buf.getvalue()


def _write_photo(task: tuple[str, str, ImageSpec]) -> int:
    """Pool task: write one picture unless present; returns its size (0 when it was there)."""
    path, seed, spec = task
    if os.path.exists(path):
        return 0
    data = make_photo(seed, spec)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def _remi_images(task: tuple[str, int, ImageSpec]) -> list[bytes]:
    prefix, count, spec = task
    return [make_photo(f"{prefix}/image_{n}", spec) for n in range(1, count + 1)]


# ------------------------------------------------------------------------------- text


_WORD = re.compile(r"[a-z]{3,12}")
_FALLBACK = ("river", "stone", "garden", "window", "paper", "candle", "bridge", "morning")


def _vocabulary() -> list[str]:
    text = []
    for path in (
        SAMPLE / "wikihow" / "WikihowText_data.json",
        SAMPLE / "mathvista" / "testmini.json",
        *sorted((SAMPLE / "vist" / "sis").glob("*.json")),
        SAMPLE / "coco" / "annotations" / "captions_val2017.json",
    ):
        if path.is_file():
            text.append(path.read_text("utf-8").lower())
    words = sorted(set(_WORD.findall(" ".join(text))) | set(_FALLBACK))
    return [w for w in words if not w.startswith(("http", "www"))]


class Words:
    """Random words from the samples' vocabulary (~2,000 words), seeded per item."""

    def __init__(self) -> None:
        self.vocab = _vocabulary()

    def rng(self, *key: object) -> random.Random:
        return random.Random(_seed("/".join(map(str, (SEED, *key)))))

    def phrase(self, rnd: random.Random, lo: int, hi: int) -> str:
        return " ".join(rnd.choice(self.vocab) for _ in range(rnd.randint(lo, hi)))

    def sentence(self, rnd: random.Random, lo: int = 9, hi: int = 16) -> str:
        s = self.phrase(rnd, lo, hi)
        return s[0].upper() + s[1:] + "."


# ------------------------------------------------------------------------------- sources


@dataclass
class Planned:
    """What one source contributes: picture tasks, items, and pictures per item."""

    tasks: list[tuple[str, str, ImageSpec]] = field(default_factory=list)
    items: int = 0
    images: int = 0


def _vist(root: Path, n: int, words: Words, spec: ImageSpec) -> Planned:
    samp = json.loads((SAMPLE / "vist" / "sis" / "test.story-in-sequence.json").read_text())
    albums_t, images_t = samp["albums"], samp["images"]
    labels = sorted({a.get("vist_label") for a in albums_t if a.get("vist_label")})
    plan = Planned(items=n, images=n * STORY)
    cut, start = [], 0
    for i, (split, share) in enumerate(VIST_SPLITS):
        count = n - start if i == len(VIST_SPLITS) - 1 else round(n * share)
        cut.append((split, start, start + count))
        start += count
    (root / "sis").mkdir(parents=True, exist_ok=True)
    for split, lo, hi in cut:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        albums, images, annotations = [], [], []
        for s in range(lo, hi):
            rnd = words.rng("vist", s)
            album_id = str(72157600000000000 + s // 2)
            if s % 2 == 0 or s == lo:
                a = dict(albums_t[s % len(albums_t)])
                a.update(
                    id=album_id,
                    title=words.phrase(rnd, 3, 6).title(),
                    description=words.sentence(rnd),
                    vist_label=labels[s % len(labels)] if labels else "party",
                    photos=str(2 * STORY),
                    primary=str(30_000_000_000 + s * STORY),
                )
                albums.append(a)
            for o in range(STORY):
                photo = str(30_000_000_000 + s * STORY + o)
                im = dict(images_t[(s * STORY + o) % len(images_t)])
                im.update(id=photo, album_id=album_id, title=words.phrase(rnd, 2, 5))
                images.append(im)
                original = words.sentence(rnd)
                annotations.append(
                    [
                        {
                            "original_text": original,
                            "album_id": album_id,
                            "photo_flickr_id": photo,
                            "setting": "first-2-pick-and-tell",
                            "worker_id": f"W{s % 997:04d}BENCH",
                            "story_id": str(900_000 + s),
                            "tier": "story-in-sequence",
                            "worker_arranged_photo_order": o,
                            "text": original.lower().rstrip(".") + " .",
                            "storylet_id": str(4_500_000 + s * STORY + o),
                        }
                    ]
                )
                path = root / "images" / split / f"{photo}.jpg"
                plan.tasks.append((str(path), f"vist/{photo}", spec))
        doc = {"images": images, "albums": albums, "type_": "story_in_sequence"}
        doc["annotations"] = annotations
        (root / "sis" / f"{split}.story-in-sequence.json").write_text(json.dumps(doc))
    return plan


def _wikihow(root: Path, n: int, words: Words, spec: ImageSpec) -> Planned:
    templates = [
        json.loads(line)
        for line in (SAMPLE / "wikihow" / "WikihowText_data.json").read_text().splitlines()
        if line.strip()
    ]
    from sources.wikihow.parse import map_category

    hierarchies = []
    for t in templates:
        try:
            map_category(t["category_hierarchy"])
            hierarchies.append(t["category_hierarchy"])
        except Exception:  # a category the mapping drops (Home and Garden)
            continue
    plan = Planned(items=n)
    images_dir = root / "wiki_images"
    images_dir.mkdir(parents=True, exist_ok=True)
    lines, made, a = [], 0, 0
    while made < n:
        rnd = words.rng("wikihow", a)
        file_id = str(50_000_000 + a)
        n_methods = min(rnd.randint(*WIKIHOW_METHODS), n - made)
        methods = []
        for m in range(n_methods):
            steps = []
            for s in range(rnd.randint(*WIKIHOW_STEPS)):
                step_id = f"{file_id}_{m}_{s}"
                steps.append(
                    {
                        "headline": words.sentence(rnd, 5, 9),
                        "description": words.sentence(rnd, 14, 30),
                        "img": f"https://www.wikihow.com/images/thumb/{step_id}.jpg",
                        "img_license": "Creative Commons",
                        "step_id": step_id,
                    }
                )
                path = images_dir / f"{step_id}.jpg"
                plan.tasks.append((str(path), f"wikihow/{step_id}", spec))
            name = words.phrase(rnd, 2, 5).title()
            methods.append({"name": name, "method_id": f"{file_id}_{m}", "steps": steps})
        article = {
            "file_id": file_id,
            "goal": "How to " + words.phrase(rnd, 3, 6).title(),
            "goal_description": None if a % 5 == 0 else words.sentence(rnd, 20, 40),
            "category_hierarchy": list(hierarchies[a % len(hierarchies)]),
            "methods": methods,
        }
        lines.append(json.dumps(article, ensure_ascii=False))
        made += n_methods
        a += 1
    (root / "WikihowText_data.json").write_text("\n".join(lines) + "\n")
    plan.images = len(plan.tasks)
    return plan


def _mathvista(root: Path, n: int, words: Words, spec: ImageSpec) -> Planned:
    real = json.loads((SAMPLE / "mathvista" / "testmini.json").read_text())
    queries = json.loads((SAMPLE / "mathvista" / "query.json").read_text())
    templates = list(real.values())
    plan = Planned(items=n, images=n)
    (root / "images").mkdir(parents=True, exist_ok=True)
    problems, query = {}, {}
    for k in range(n):
        t = copy.deepcopy(templates[k % len(templates)])
        pid = str(100_000 + k)
        extra = words.sentence(words.rng("mathvista", k), 10, 16)
        question = f"{t['question']} {extra}"
        q = queries.get(t["pid"], "")
        query[pid] = q.replace(t["question"], question) if q else question
        t.update(pid=pid, image=f"images/{pid}.jpg", question=question)
        t["metadata"].update(img_width=spec.width, img_height=spec.height)
        problems[pid] = t
        plan.tasks.append((str(root / "images" / f"{pid}.jpg"), f"mathvista/{pid}", spec))
    (root / "testmini.json").write_text(json.dumps(problems, ensure_ascii=False))
    (root / "query.json").write_text(json.dumps(query, ensure_ascii=False))
    return plan


def _remi(root: Path, n: int, words: Words, spec: ImageSpec, pool: Any) -> tuple[Planned, int, int]:
    """Write ``remi/test.parquet``: rows already in an older file are copied, new rows made.
    Returns the plan and the number and bytes of new pictures."""
    from tools.make_sample_remi import N_IMAGE_COLUMNS, TEST_ROWS, hf_schema

    root.mkdir(parents=True, exist_ok=True)
    path, tmp = root / "test.parquet", root / "test.parquet.tmp"
    schema = hf_schema()
    have = 0
    writer = pq.ParquetWriter(tmp, schema, compression="snappy")
    pending: list[dict[str, Any]] = []

    def flush(force: bool = False) -> None:
        while len(pending) >= REMI_ROWS_PER_GROUP or (force and pending):
            rows = pending[:REMI_ROWS_PER_GROUP]
            del pending[:REMI_ROWS_PER_GROUP]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))

    try:
        if path.exists():
            old = pq.ParquetFile(path)
            for g in range(old.num_row_groups):
                for row in old.read_row_group(g).to_pylist():
                    if have < n:
                        pending.append(row)
                        have += 1
                flush()
        new_bytes, new_images = 0, 0
        specs = []
        for k in range(have, n):
            task, question, label, count, _fmt = TEST_ROWS[k % len(TEST_ROWS)]
            specs.append((k, task, question, label, count))
        jobs = [(f"remi/test/{k}", count, spec) for k, _t, _q, _l, count in specs]
        for (k, task, question, label, count), images in zip(
            specs, pool.imap(_remi_images, jobs, chunksize=4), strict=True
        ):
            extra = words.sentence(words.rng("remi", k), 10, 16)
            row: dict[str, Any] = {"question": f"{question} {extra}", "label": label, "task": task}
            for c in range(1, N_IMAGE_COLUMNS + 1):
                row[f"image_{c}"] = {"bytes": images[c - 1], "path": None} if c <= count else None
            new_bytes += sum(len(b) for b in images)
            new_images += len(images)
            pending.append(row)
            flush()
        flush(force=True)
    finally:
        writer.close()
    os.replace(tmp, path)
    counts = [TEST_ROWS[k % len(TEST_ROWS)][3] for k in range(n)]
    return Planned(items=n, images=sum(counts)), new_images, new_bytes


def _coco(root: Path, n: int, words: Words, spec: ImageSpec) -> Planned:
    caps = json.loads((SAMPLE / "coco" / "annotations" / "captions_val2017.json").read_text())
    inst = json.loads((SAMPLE / "coco" / "annotations" / "instances_val2017.json").read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in inst["annotations"]:
        if not ann["iscrowd"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
    captions: dict[int, list[dict[str, Any]]] = {}
    for ann in caps["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann)
    templates = [im for im in caps["images"] if im["id"] in by_image and im["id"] in captions]
    plan = Planned(items=n, images=n)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    images, cap_anns, inst_anns = [], [], []
    next_ann = 2_000_000_000
    for k in range(n):
        t = templates[k % len(templates)]
        rnd = words.rng("coco", k)
        image_id = 900_000_000 + k
        name = f"{image_id:012d}.jpg"
        sx, sy = spec.width / t["width"], spec.height / t["height"]
        images.append(
            dict(t, id=image_id, file_name=name, width=spec.width, height=spec.height)
            | {"coco_url": f"http://images.cocodataset.org/val2017/{name}"}
        )
        for c in captions[t["id"]]:
            text = c["caption"].rstrip().rstrip(".")
            text = f"{text} near the {words.phrase(rnd, 2, 3)}."
            cap_anns.append({"image_id": image_id, "id": next_ann, "caption": text})
            next_ann += 1
        for a in by_image[t["id"]]:
            x, y, w, h = a["bbox"]
            seg = [
                [round(v * (sx if i % 2 == 0 else sy), 2) for i, v in enumerate(part)]
                for part in a["segmentation"]
            ]
            inst_anns.append(
                dict(
                    a,
                    id=next_ann,
                    image_id=image_id,
                    bbox=[round(x * sx, 2), round(y * sy, 2), round(w * sx, 2), round(h * sy, 2)],
                    area=round(a["area"] * sx * sy, 2),
                    segmentation=seg,
                )
            )
            next_ann += 1
        plan.tasks.append((str(root / "val2017" / name), f"coco/{image_id}", spec))
    out_caps = {k: v for k, v in caps.items() if k not in ("images", "annotations")}
    out_inst = {k: v for k, v in inst.items() if k not in ("images", "annotations")}
    (root / "annotations" / "captions_val2017.json").write_text(
        json.dumps(out_caps | {"images": images, "annotations": cap_anns})
    )
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps(out_inst | {"images": images, "annotations": inst_anns})
    )
    return plan


# ------------------------------------------------------------------------------- corpus


CONFIG = """\
# mmloom build config for a bench/scale.py corpus (generated)
version: 1
name: scale-{n}
sources:
  vist:
    sis: vist/sis/*.story-in-sequence.json
    images: vist/images
  wikihow:
    text: wikihow/WikihowText_data.json
    images: wikihow/wiki_images
  mathvista:
    root: mathvista
    splits: [testmini]
  remi:
    parquet: remi/test.parquet
  coco:
    root: coco
    split: val
"""


@dataclass
class Corpus:
    root: str
    config: str
    n: int
    mix: dict[str, int]
    images: dict[str, int]
    images_made: int
    bytes_made: int
    seconds: float
    corpus_bytes: int
    width: int
    height: int
    quality: int

    @property
    def images_total(self) -> int:
        return sum(self.images.values())

    def rate(self) -> float:
        return self.images_made / self.seconds if self.seconds else 0.0


def folder_bytes(path: str | Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _chunks(tasks: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(tasks), size):
        yield tasks[i : i + size]


def generate(
    root: Path,
    n: int,
    spec: ImageSpec = ImageSpec(),
    processes: int = 2,
    if_share: float = IF_SHARE,
    progress: bool = True,
) -> Corpus:
    """Write (or grow) the corpus for N items under ``root``; returns what it holds."""
    t0 = time.perf_counter()
    mix = Mix.for_n(n, if_share)
    stamp = root / "corpus.json"
    if stamp.exists():
        old = json.loads(stamp.read_text())
        same = (old["width"], old["height"], old["quality"]) == (
            spec.width,
            spec.height,
            spec.quality,
        )
        if not same or old["n"] > n:  # a larger corpus's extra files would be listed too
            shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    words = Words()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        plans = {
            "vist": _vist(root / "vist", mix.vist, words, spec),
            "wikihow": _wikihow(root / "wikihow", mix.wikihow, words, spec),
            "mathvista": _mathvista(root / "mathvista", mix.mathvista, words, spec),
            "coco": _coco(root / "coco", mix.coco, words, spec),
        }
        tasks = [t for p in plans.values() for t in p.tasks if not os.path.exists(t[0])]
        made, made_bytes, last = 0, 0, time.perf_counter()
        for size in pool.imap_unordered(_write_photo, tasks, chunksize=16):
            made += 1
            made_bytes += size
            if progress and time.perf_counter() - last > 30:
                last = time.perf_counter()
                rate = made / (last - t0)
                print(f"  corpus: {made:,}/{len(tasks):,} pictures, {rate:.0f}/s", flush=True)
        remi_plan, new_remi_images, remi_bytes = _remi(root / "remi", mix.remi, words, spec, pool)
    plans["remi"] = remi_plan
    (root / "bench.yaml").write_text(CONFIG.format(n=n))
    seconds = time.perf_counter() - t0
    corpus = Corpus(
        root=str(root),
        config=str(root / "bench.yaml"),
        n=n,
        mix=asdict(mix),
        images={k: p.images for k, p in plans.items()},
        images_made=made + new_remi_images,
        bytes_made=made_bytes + remi_bytes,
        seconds=seconds,
        corpus_bytes=folder_bytes(root),
        width=spec.width,
        height=spec.height,
        quality=spec.quality,
    )
    stamp.write_text(json.dumps(asdict(corpus), indent=1))
    return corpus
