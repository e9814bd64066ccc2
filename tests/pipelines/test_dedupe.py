"""Issue 3: exact and near-duplicate images, the frequency rule, duplicate items, text dedupe."""

from __future__ import annotations

import io
import random
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image, ImageEnhance

from pipelines.dedupe import hamming, text
from pipelines.dedupe.stages import DedupeRecords
from pipelines.transforms.images import load_images
from schemas.deadletter import DEAD
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from tools.sample_images import make_image

PHOTOS = Path(__file__).resolve().parent.parent / "testdata" / "photos"


# --- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 3, 5, 10])
def test_bands_cover_64_bits(k):
    layout = hamming.band_layout(k)
    assert len(layout) == k + 1
    assert sum(w for _, w in layout) == 64
    assert max(w for _, w in layout) - min(w for _, w in layout) <= 1


@pytest.mark.parametrize("k", [2, 5, 8])
def test_banded_search_equals_all_pairs(k):
    rng = np.random.default_rng(k)
    h = rng.integers(0, 2**64 - 1, size=3000, dtype=np.uint64, endpoint=True)
    for d in range(k + 2):  # plant pairs at every distance up to k + 1
        flip = np.uint64(0)
        for bit in rng.choice(64, size=d, replace=False):
            flip |= np.uint64(1) << np.uint64(int(bit))
        h[2 * d + 1] = h[2 * d] ^ flip
    found = hamming.near_duplicate_pairs(h, k)
    assert found == hamming.all_pairs(h, k)
    assert {(2 * d, 2 * d + 1) for d in range(k + 1)} <= found
    assert (2 * (k + 1), 2 * (k + 1) + 1) not in found


def test_clusters_are_connected_components():
    assert hamming.clusters([("b", "a"), ("c", "b"), ("x", "y")]) == [["a", "b", "c"], ["x", "y"]]


def test_lsh_params_fit_num_perm():
    bands, rows = text.lsh_params(0.8)
    assert bands * rows <= text.NUM_PERM and bands > 1 and rows > 1


def test_text_normalisation_and_estimate():
    assert text.normalise("  Hello,   WORLD!\n") == "hello world"
    a = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert text.jaccard_estimate(text.minhash(a), text.minhash(a.upper() + " !")) == 1.0
    b = a.replace("seven", "SEVENTY")
    true_j = len(text.shingles(a) & text.shingles(b)) / len(text.shingles(a) | text.shingles(b))
    assert abs(text.jaccard_estimate(text.minhash(a), text.minhash(b)) - true_j) < 0.15


# --- planted images ---------------------------------------------------------------------------


def _jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _photo(name: str) -> Image.Image:
    return Image.open(PHOTOS / f"{name}.jpg").convert("RGB")


def _record(source: str, n: int, image: bytes, category: str = "MSR", q: str | None = None,
            a: str | None = None, answer_image: bytes | None = None) -> dict:  # fmt: skip
    refs = ImageRefs()
    question = [seg(q or f"question {source} {n}", refs.add(f"mem://{source}/{n}.jpg", image))]
    answer = [seg(a or f"answer {n}")]
    if answer_image is not None:
        answer = [seg(a or f"answer {n}", refs.add(f"mem://{source}/{n}-a.jpg", answer_image))]
    fields = {"MSR": ("Mathematics", "Algebra"), "PBL": ("Education", "Writing")}[category]
    draft = new_record(
        record_id=make_id(category, source, n),
        category=category,
        field=fields[0],
        subfield=fields[1],
        question=question,
        answer=answer,
        gt_answer=[seg(a or f"answer {n}")] if category == "MSR" else None,
        images=refs,
        provenance=provenance(source, "test", str(n), "test", f"{source}.json"),
    )
    return load_images(draft)


def planted_records() -> tuple[list[dict], dict[str, set[str]]]:
    """Two sources; expected duplicate groups (ids) and distinct records."""
    astro, cat, coffee, rocket = (_photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket"))
    w, h = rocket.size
    cw, ch = coffee.size
    recs = [
        _record("mathvista", 1, _jpeg(astro)),
        _record("mathvista", 2, _jpeg(cat)),
        _record("mathvista", 3, _jpeg(coffee)),
        _record("mathvista", 4, _jpeg(rocket)),
        # distinct but similar: another framing of the same scene (a quarter shifted)
        _record("mathvista", 5, _jpeg(coffee.crop((cw // 4, 0, cw, ch)))),
        _record("remi", 1, _jpeg(astro)),  # exact duplicate (same bytes), other source
        _record("remi", 2, _jpeg(cat, quality=40)),  # re-encoded at another quality
        _record("remi", 3, _jpeg(coffee.resize((int(cw * 0.9), int(ch * 0.9))))),  # 90% size
        _record("remi", 4, _jpeg(rocket.crop((0, 0, w - int(w * 0.02), h)))),  # 2% crop
        _record("remi", 5, _jpeg(ImageEnhance.Brightness(astro).enhance(1.15))),  # brighter
        # distinct but similar: the other half of the cat picture, and a second framing
        _record("remi", 6, _jpeg(cat.crop((cat.size[0] // 2, 0, *cat.size)))),
    ]
    groups = {
        "MSR_mathvista_1": {"MSR_remi_1", "MSR_remi_5"},
        "MSR_mathvista_2": {"MSR_remi_2"},
        "MSR_mathvista_3": {"MSR_remi_3"},
        "MSR_mathvista_4": {"MSR_remi_4"},
    }
    return recs, groups


def _run(records, options=None, policy="drop_record"):
    with TestPipeline() as p:
        out = p | beam.Create(records) | DedupeRecords(options or {}, on_bad_image=policy)
        yield out


def test_planted_duplicates_found_across_sources_and_distinct_kept():
    records, groups = planted_records()
    dropped = {d for dups in groups.values() for d in dups}
    kept = sorted(r["id"] for r in records if r["id"] not in dropped)
    expected_dead = sorted(
        (d, "duplicate_item_image", f"{d} duplicates {k}") for k, ds in groups.items() for d in ds
    )
    for order in (records, random.Random(3).sample(records, len(records))):
        with TestPipeline() as p:
            out = p | beam.Create(order) | DedupeRecords({})
            assert_that(out["records"] | beam.Map(lambda r: r["id"]), equal_to(kept))
            dead = out[DEAD] | beam.Map(
                lambda d: (f"MSR_{d['source']}_{d['source_id']}", d["reason"], d["detail"])
            )
            assert_that(dead, equal_to(expected_dead), label="Dead")

            def check(reports):
                (r,) = reports
                rep = r["dedupe"]
                assert rep["image_clusters"] == 4  # astronaut (+bright), cat, coffee, rocket
                assert rep["cluster_sizes"] == {"2": 4}  # exact copies share one sha256
                assert rep["duplicate_items"] == {"image": 5}
                assert rep["leakage_counts"] == {"mathvista/remi": 5}
                assert {(x["kept"], x["dropped"]) for x in rep["leakage"]} == {
                    (k, d) for k, ds in groups.items() for d in ds
                }

            assert_that(out["report"], check, label="Report")


def test_frequency_rule_drops_over_used_images():
    logo = make_image("logo", 200, 200, fmt="PNG")
    photos = [_jpeg(_photo(n)) for n in ("astronaut", "chelsea", "coffee", "rocket")]
    # 11 records use the logo in their answer (more than max_image_uses = 10)
    records = [
        _record("wikihow", i, photos[i % 4] if i < 4 else make_image(f"p{i}", 300, 200),
                category="PBL", q=f"How to do thing number {i}", answer_image=logo)
        for i in range(11)
    ]  # fmt: skip
    ids = sorted(r["id"] for r in records)
    with TestPipeline() as p:
        out = p | "A" >> beam.Create(records) | "DropRecords" >> DedupeRecords({})
        assert_that(out["records"], equal_to([]))
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["reason"], d["unit"])),
            equal_to([("image_too_frequent", "record")] * 11),
            label="Dead",
        )
    with TestPipeline() as p:
        out = (
            p
            | "B" >> beam.Create(records)
            | "DropSegments" >> DedupeRecords({}, on_bad_image="drop_segment")
        )
        kept = out["records"] | beam.Map(
            lambda r: (r["id"], len(r["images"]), r["answer"][0]["image"])
        )
        assert_that(kept, equal_to([(i, 1, None) for i in ids]))
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["reason"], d["unit"])),
            equal_to([("image_too_frequent", "image")] * 11),
            label="Dead",
        )
    # at the limit (10 uses) nothing is dropped
    with TestPipeline() as p:
        out = p | "C" >> beam.Create(records[:10]) | "AtLimit" >> DedupeRecords({})
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]),
            equal_to(sorted(ids)[:10] and [r["id"] for r in records[:10]]),
        )


def test_text_duplicates_need_the_same_question_and_answer():
    q = "What is the age gap between these two people in image?"
    steps = (
        "How to Write a Thank You Note? Method 1: Writing the Note. Step 1: Choose a plain "
        "card or good paper, a simple folded card works for almost any occasion. Avoid "
        "cards with long printed messages, since your own words matter more than a poem "
        "someone else wrote. Keep a few blank cards at home so you can write the note on "
        "the same day you receive the gift, while the details are still fresh in mind"
    )
    near = steps.replace("almost", "nearly")
    jac = len(text.shingles(steps) & text.shingles(near)) / len(
        text.shingles(steps) | text.shingles(near)
    )
    assert jac >= 0.8  # the planted pair really is a near-duplicate by the configured measure
    records = [
        # same templated question, different photos and answers: distinct items
        _record("mathvista", 27, _jpeg(_photo("astronaut")), q=q, a="11"),
        _record("mathvista", 29, _jpeg(_photo("chelsea")), q=q, a="4"),
        # same question and answer on another picture: the same item (exact text)
        _record("remi", 7, _jpeg(_photo("coffee")), q=q + "  ", a="11"),
        # a near-duplicate PBL text (one word changed), different pictures
        _record("wikihow", 1, _jpeg(_photo("rocket")), category="PBL", q=steps, a="Step 2: write."),
        _record("wikihow", 2, make_image("w2", 300, 200), category="PBL",
                q=near, a="Step 2: write."),
    ]  # fmt: skip
    with TestPipeline() as p:
        out = p | beam.Create(records) | DedupeRecords({})
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]),
            equal_to(["MSR_mathvista_27", "MSR_mathvista_29", "PBL_wikihow_1"]),
        )
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["source"], d["source_id"], d["reason"], d["detail"])),
            equal_to(
                [
                    ("remi", "7", "duplicate_item_text", "MSR_remi_7 duplicates MSR_mathvista_27"),
                    (
                        "wikihow",
                        "2",
                        "duplicate_item_text",
                        "PBL_wikihow_2 duplicates PBL_wikihow_1",
                    ),
                ]
            ),
            label="Dead",
        )


def test_text_dedupe_skips_categories_not_listed():
    q = "A question long enough to be compared by its words alone, nothing else"
    records = [
        _record("mathvista", 1, _jpeg(_photo("astronaut")), q=q, a="1"),
        _record("mathvista", 2, _jpeg(_photo("chelsea")), q=q, a="1"),
    ]
    with TestPipeline() as p:
        out = p | beam.Create(records) | DedupeRecords({"text_categories": ["PBL"]})
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]), equal_to([r["id"] for r in records])
        )
