"""Rebuild the real development halves in their source layouts, with stand-in images.

The development halves in ``../shared/samples/`` hold real records at the real distribution
but no images. This tool writes them in the layouts the readers take, so that a whole
``mmloom build --no-clip`` runs on them (``tests/pipelines/test_dedupe_dev_halves.py``):

* MathVista (GitHub layout): ``testmini.json`` and ``query.json`` (the 500 real problems,
  unchanged) and one stand-in ``images/<pid>.jpg`` per problem, with the aspect of
  ``metadata.img_width`` x ``img_height`` and the long side capped at ``MATHVISTA_SIDE``. With
  ``plant=True``, :data:`PLANTED` adds true duplicates of real problems under new pids.
* VIST (SIS): ``sis/test.story-in-sequence.json`` (``albums``, ``images``, ``annotations`` as
  1-element lists) and one stand-in ``images/test/<photo_id>.jpg`` per photo id; the same
  file wherever the same photo id recurs.
  - ``challenge``: the 1,010 VIST-Challenge stories (album, 5 ordered photo ids, normalised
    text), one story each.
  - ``arel``: the 1,509 AREL reference stories of 449 albums (3-5 per album, as several
    workers wrote over one album in the real SIS file). AREL keeps no photo ids: a story
    whose text is a challenge story of its album takes that story's sequence; the others of
    an album in the challenge half take its sequences in turn (several stories over one
    sequence, as in the real file); albums outside the challenge half get two invented
    sequences that share their first and third photos, as real sequences of one album do.
  Story texts are split after ``.``, ``!`` or ``?`` into the 5 storylets; where that does not
  give 5 sentences (30% of stories), the words are cut into 5 near-equal parts. Story ids
  (``CHALLENGE_FIRST_ID``, ``AREL_FIRST_ID`` + position) and invented photo ids are ours.

Stand-in images are smooth random colour fields (a 12 x 12 grid, seeded by the image id,
resized bilinearly): distinct content per id gives unrelated 64-bit pHashes (expected distance
32, and no two of a few thousand within the near-duplicate distance 5).

    .venv/bin/python -m tools.make_dev_halves --out DIR   # DIR/mathvista, DIR/vist-*
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "samples"
MATHVISTA_SIDE = 256
VIST_SIZE = (256, 192)
SPLIT = "test"
STORY_LENGTH = 5
CHALLENGE_FIRST_ID = 700000
AREL_FIRST_ID = 800000
INVENTED_PHOTO_PREFIX = "99"  # invented photo ids: 99 + album position + photo index
SENTENCE_END = re.compile(r"(?<=[.!?]) (?=\S)")


def standin_image(seed: str, width: int, height: int, quality: int = 85) -> bytes:
    """A JPEG whose content depends only on ``seed`` and the size."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    grid = Image.fromarray(rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    grid.resize((width, height), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _capped(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _jpeg(im: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _reencoded(data: bytes) -> bytes:
    return _jpeg(Image.open(io.BytesIO(data)), quality=40)


def _resized(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data))
    return _jpeg(im.resize((int(im.width * 0.9), int(im.height * 0.9))))


def _cropped(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data))
    return _jpeg(im.crop((0, 0, im.width - max(1, im.width // 50), im.height)))


def _restyled(question: str) -> str:
    """Case, whitespace and Unicode-form changes only (NFKC folds the full-width digits)."""
    wide = question.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    return "  " + wide.upper().replace(" ", "  \n ") + " "


# Planted copies of real problems: new pid -> (copied pid, how the image is made, how the
# question text changes, answer override). The expected outcome is in the test.
PLANTED: dict[str, tuple[str, Callable[[bytes], bytes] | None, Callable[[str], str] | None]] = {
    "90001": ("1", None, None),  # the same image file, the same question
    "90002": ("2", _reencoded, None),  # re-encoded at JPEG quality 40
    "90003": ("3", _resized, None),  # resized to 90%
    "90004": ("4", _cropped, None),  # 2% cropped from the right edge
    "90005": ("5", None, _restyled),  # the same image, question in another case/space/form
    "90006": ("6", None, None),  # the same item with another answer: a label conflict
}
CONFLICT_PID = "90006"


def _other_answer(problem: dict[str, Any]) -> str:
    if problem.get("choices"):
        return next(c for c in problem["choices"] if c != problem["answer"])
    return problem["answer"] + "1"


def write_mathvista(out: Path, shared: Path = SHARED / "mathvista", plant: bool = False) -> int:
    """Write the MathVista half under ``out``; returns the number of problems."""
    problems = json.loads((shared / "testmini_dev_half.json").read_text("utf-8"))
    queries = json.loads((shared / "query_dev_half.json").read_text("utf-8"))
    (out / "images").mkdir(parents=True, exist_ok=True)
    data: dict[str, bytes] = {}
    for pid, problem in problems.items():
        meta = problem["metadata"]
        size = _capped(int(meta["img_width"]), int(meta["img_height"]), MATHVISTA_SIDE)
        data[pid] = standin_image(f"mathvista/{pid}", *size)
        (out / problem["image"]).write_bytes(data[pid])
    if plant:
        for pid, (source, make, restyle) in PLANTED.items():
            problem = json.loads(json.dumps(problems[source]))
            problem["pid"] = pid
            if make is not None:
                problem["image"] = f"images/{pid}.jpg"
                (out / problem["image"]).write_bytes(make(data[source]))
            if restyle is not None:
                problem["question"] = restyle(problem["question"])
            if pid == CONFLICT_PID:
                problem["answer"] = _other_answer(problem)
            problems[pid] = problem
            queries[pid] = queries[source]
    (out / "testmini.json").write_text(json.dumps(problems, ensure_ascii=False), "utf-8")
    (out / "query.json").write_text(json.dumps(queries, ensure_ascii=False), "utf-8")
    return len(problems)


def split_story(text: str) -> list[str]:
    """The 5 storylets of a story: its sentences, or 5 near-equal word runs."""
    parts = SENTENCE_END.split(text.strip())
    if len(parts) == STORY_LENGTH:
        return parts
    words = text.split()
    cuts = [round(i * len(words) / STORY_LENGTH) for i in range(STORY_LENGTH + 1)]
    return [" ".join(words[a:b]) for a, b in itertools.pairwise(cuts)]


def _challenge(shared: Path) -> list[dict[str, Any]]:
    doc = json.loads((shared / "challenge_test_dev_half.json").read_text("utf-8"))
    return doc["output_stories"]


def challenge_stories(shared: Path = SHARED / "vist") -> list[tuple[str, list[str], str]]:
    """``(album_id, photo ids, text)`` of every challenge story."""
    return [
        (s["album_id"], s["photo_sequence"], s["story_text_normalized"]) for s in _challenge(shared)
    ]


def arel_stories(shared: Path = SHARED / "vist") -> list[tuple[str, list[str], str]]:
    """``(album_id, photo ids, text)`` of every AREL story, photo ids as the module says."""
    arel = json.loads((shared / "arel_test_reference_dev_half.json").read_text("utf-8"))
    sequences: dict[str, list[list[str]]] = {}
    by_text: dict[tuple[str, str], list[str]] = {}
    for album, photos, story in challenge_stories(shared):
        sequences.setdefault(album, []).append(photos)
        by_text[(album, story)] = photos
    out = []
    for n, (album, stories) in enumerate(arel.items()):
        seqs = sequences.get(album)
        if seqs is None:
            p = [f"{INVENTED_PHOTO_PREFIX}{n:04d}{j}" for j in range(8)]
            seqs = [p[:5], [p[0], p[5], p[2], p[6], p[7]]]
        for i, story in enumerate(stories):
            out.append((album, by_text.get((album, story), seqs[i % len(seqs)]), story))
    return out


def write_vist(out: Path, stories: list[tuple[str, list[str], str]], first_id: int) -> int:
    """Write the stories as one SIS file plus stand-in photos under ``out``; returns the
    number of photos."""
    albums, images, annotations = {}, {}, []
    for n, (album, photos, story) in enumerate(stories):
        albums.setdefault(album, {"id": album})
        story_id = first_id + n
        for order, (photo, sentence) in enumerate(zip(photos, split_story(story))):
            images.setdefault(photo, {"id": photo, "album_id": album, "media": "photo"})
            annotations.append(
                [
                    {
                        "story_id": str(story_id),
                        "storylet_id": str(story_id * STORY_LENGTH + order),
                        "album_id": album,
                        "photo_flickr_id": photo,
                        "worker_arranged_photo_order": order,
                        "tier": "story-in-sequence",
                        "text": sentence,
                    }
                ]
            )
    (out / "sis").mkdir(parents=True, exist_ok=True)
    sis = {
        "albums": list(albums.values()),
        "images": list(images.values()),
        "annotations": annotations,
    }
    (out / "sis" / f"{SPLIT}.story-in-sequence.json").write_text(json.dumps(sis), "utf-8")
    folder = out / "images" / SPLIT
    folder.mkdir(parents=True, exist_ok=True)
    for photo in images:
        (folder / f"{photo}.jpg").write_bytes(standin_image(f"vist/{photo}", *VIST_SIZE))
    return len(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plant", action="store_true", help="add the planted MathVista copies")
    args = parser.parse_args(argv)
    print("mathvista problems:", write_mathvista(args.out / "mathvista", plant=args.plant))
    print(
        "vist challenge photos:",
        write_vist(args.out / "vist-challenge", challenge_stories(), CHALLENGE_FIRST_ID),
    )
    print("vist arel photos:", write_vist(args.out / "vist-arel", arel_stories(), AREL_FIRST_ID))


if __name__ == "__main__":
    main()
