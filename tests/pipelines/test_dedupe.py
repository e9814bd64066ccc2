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

from pipelines.config import DedupeConfig
from pipelines.dedupe import hamming, text
from pipelines.dedupe.stages import (
    REASON_CONFLICT,
    REASON_DUPLICATE,
    REASON_NEAR,
    DedupeRecords,
    decide_group,
)
from pipelines.images import load_images
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


def test_text_normalisation_folds_case_space_punctuation_and_unicode_form():
    assert text.normalise("  Hello,   WORLD!\n") == "hello world"
    # NFKC: full-width digits and letters, the "ﬁ" ligature; casefold: "ß" -> "ss"
    assert text.normalise("Ｆind ｘ = １２ ﬁrst, Straße") == text.normalise(
        "find x 12 first strasse"
    )


def test_jaccard_is_computed_on_the_pair():
    a = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert text.jaccard(text.shingles(a), text.shingles(a.upper() + " !")) == 1.0
    b = a.replace("seven", "SEVENTY")
    sa, sb = text.shingles(a), text.shingles(b)
    assert text.jaccard(sa, sb) == len(sa & sb) / len(sa | sb) == 5 / 15
    assert text.shingles("two words") == {"two words"}


def test_numbers_in_order():
    assert text.numbers("mass m=0.40 kg, speed 0.50 m/s, k = 750 N/m") == ["0.40", "0.50", "750"]
    assert text.numbers("ｘ＝１２") == ["12"]


# --- the identity rule, on record summaries -----------------------------------------------------


def _summary(rid: str, question: str, images=("img",), answer: str = "a", near: bool = True,
             source: str = "mathvista") -> dict:  # fmt: skip
    q = text.normalise(question)
    return {
        "id": rid,
        "source": source,
        "category": "MSR",
        "question_images": list(images),
        "all_clusters": sorted(set(images)),
        "question": q,
        "near": near and len(q.split()) >= 8,
        "answer": answer,
        "answer_key": [text.normalise(answer), []],
    }


def _decide(members, threshold=0.8):
    return {rid: (d["kept"], d["reason"]) for rid, d in decide_group(members, threshold)}


LONG = (
    "In the figure a cumin canister slides across a horizontal frictionless counter and then "
    "runs into and compresses a spring. When the canister is momentarily stopped by the "
    "spring, by what distance is the spring compressed? Answer with a decimal number."
)


def test_equal_normalised_text_is_one_item_and_the_smallest_id_stays():
    members = [
        _summary("MSR_b_2", "What is the degree of this function?"),
        _summary("MSR_a_1", "what is the DEGREE of this   function"),
        _summary("MSR_c_3", "What is the degree of this function?", source="remi"),
    ]
    for order in (members, members[::-1]):
        assert _decide(order) == {
            "MSR_b_2": ("MSR_a_1", REASON_DUPLICATE),
            "MSR_c_3": ("MSR_a_1", REASON_DUPLICATE),
        }


def test_other_question_text_is_another_item():
    assert _decide([_summary("a", "How many bars?"), _summary("b", "How many lines?")]) == {}


def test_short_texts_match_only_when_equal():
    q = "What is the age gap between these two people in the image?"
    assert _decide([_summary("a", q, near=False), _summary("b", q + " Really?", near=False)]) == {}


def test_near_text_is_verified_on_the_pair_and_needs_the_same_numbers():
    near = LONG.replace("decimal number", "decimal value")
    assert _decide([_summary("a", LONG), _summary("b", near)]) == {"b": ("a", REASON_NEAR)}
    # the same wording with another number is another problem
    other = LONG.replace("a horizontal", "a 2 m horizontal")
    assert _decide([_summary("a", LONG), _summary("b", other)]) == {}


def test_no_chains_a_record_is_dropped_only_for_the_kept_record():
    words = [f"w{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(60)]  # no digits
    a = " ".join(words)
    b = " ".join([*words[:-4], "xa", "xb", "xc", "xd"])  # close to a
    c = " ".join(["ya", "yb", "yc", "yd", *words[4:-4], "xa", "xb", "xc", "xd"])  # close to b
    sa, sb, sc = (text.shingles(t) for t in (a, b, c))
    assert text.jaccard(sa, sb) >= 0.8 and text.jaccard(sb, sc) >= 0.8 > text.jaccard(sa, sc)
    # b goes for a; c is not close to a (the record that stays), so c stays
    assert _decide([_summary("a", a), _summary("b", b), _summary("c", c)]) == {
        "b": ("a", REASON_NEAR)
    }


def test_same_item_with_another_answer_is_a_label_conflict():
    q = "What is the degree of this function?"
    decided = dict(decide_group([_summary("a", q, answer="3"), _summary("b", q, answer="2")], 0.8))
    assert decided["b"]["reason"] == REASON_CONFLICT
    assert (decided["b"]["kept"], decided["b"]["kept_answer"], decided["b"]["answer"]) == (
        "a",
        "3",
        "2",
    )


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


KVQA = "What is the age gap between these two people in image?"
Q = {
    1: "How many objects are preferred by more than 7 people in at least one category?",
    2: "What is the degree of this function?",
    3: "Is the number of red cars less than the number of gray motorbikes?",
    4: "Which shape comes next in the sequence? Choices: (A) circle (B) square",
    6: "What fraction of the shape is blue? Answer with a word or a short phrase.",
}


def planted_records() -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Two sources: records, the expected drops ``{id: kept id}`` and their reasons."""
    astro, cat, coffee, rocket = (_photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket"))
    w, h = rocket.size
    cw, ch = coffee.size
    shape = make_image("shape", 300, 200)
    recs = [
        _record("mathvista", 1, _jpeg(astro), q=Q[1], a="3"),
        _record("mathvista", 2, _jpeg(cat), q=Q[2], a="2"),
        _record("mathvista", 3, _jpeg(coffee), q=Q[3], a="No"),
        _record("mathvista", 4, _jpeg(rocket), q=Q[4], a="B"),
        # distinct: another framing of the coffee scene (a quarter shifted), same question
        _record("mathvista", 5, _jpeg(coffee.crop((cw // 4, 0, cw, ch))), q=Q[3], a="No"),
        _record("mathvista", 6, shape, q=Q[6], a="half"),
        # distinct: KVQA's templated question over two different photos, other answers
        _record("mathvista", 27, make_image("kvqa-27", 300, 200), q=KVQA, a="11"),
        _record("mathvista", 29, make_image("kvqa-29", 300, 200), q=KVQA, a="4"),
        # distinct: the astronaut picture carries another question (legitimate reuse)
        _record("mathvista", 30, _jpeg(astro), q="What colour is the flag on the suit?"),
        # same bytes, same question, other source
        _record("remi", 1, _jpeg(astro), q=Q[1], a="3"),
        # re-encoded at another quality; the question in other case and spacing
        _record("remi", 2, _jpeg(cat, quality=40), q="  WHAT is the degree\n of this FUNCTION",
                a="2"),
        # resized to 90%
        _record("remi", 3, _jpeg(coffee.resize((int(cw * 0.9), int(ch * 0.9)))), q=Q[3], a="No"),
        # 2% crop; the question in another Unicode form (full-width letters, NFKC-equal)
        _record("remi", 4, _jpeg(rocket.crop((0, 0, w - int(w * 0.02), h))),
                q=Q[4].replace("(A)", "（Ａ）"), a="B"),
        _record("remi", 5, _jpeg(ImageEnhance.Brightness(astro).enhance(1.15)), q=Q[1], a="3"),
        # distinct: the other half of the cat picture, same question
        _record("remi", 6, _jpeg(cat.crop((cat.size[0] // 2, 0, *cat.size))), q=Q[2], a="2"),
        # the same item as mathvista 6 with another answer: a label conflict
        _record("remi", 8, shape, q=Q[6].lower(), a="quarter"),
    ]  # fmt: skip
    kept_of = {
        "MSR_remi_1": "MSR_mathvista_1",
        "MSR_remi_5": "MSR_mathvista_1",
        "MSR_remi_2": "MSR_mathvista_2",
        "MSR_remi_3": "MSR_mathvista_3",
        "MSR_remi_4": "MSR_mathvista_4",
        "MSR_remi_8": "MSR_mathvista_6",
    }
    reasons = {d: REASON_DUPLICATE for d in kept_of} | {"MSR_remi_8": REASON_CONFLICT}
    return recs, kept_of, reasons


def _run(records, options=None, policy="drop_record"):
    with TestPipeline() as p:
        out = (
            p
            | beam.Create(records)
            | DedupeRecords(DedupeConfig.from_block(options), on_bad_image=policy)
        )
        yield out


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_planted_duplicates_found_across_sources_and_distinct_kept():
    records, kept_of, reasons = planted_records()
    kept = sorted(r["id"] for r in records if r["id"] not in kept_of)
    for order in (records, random.Random(3).sample(records, len(records))):
        with TestPipeline() as p:
            out = p | beam.Create(order) | DedupeRecords(DedupeConfig.from_block(), "drop_record")
            assert_that(out["records"] | beam.Map(lambda r: r["id"]), equal_to(kept))
            dead = out[DEAD] | beam.Map(
                lambda d: (f"MSR_{d['source']}_{d['source_id']}", d["reason"], d["detail"])
            )

            def check_dead(rows):
                assert sorted((r[0], r[1]) for r in rows) == sorted(reasons.items())
                for rid, _, detail in rows:
                    assert detail.startswith(rid) and kept_of[rid] in detail

            assert_that(dead, check_dead, label="Dead")

            def check(reports):
                (r,) = reports
                rep = r["dedupe"]
                # astronaut (+ brighter copy), cat, coffee (+ 90%), rocket (+ crop)
                assert rep["image_clusters"] == 4
                assert rep["duplicate_items"] == {REASON_CONFLICT: 1, REASON_DUPLICATE: 5}
                assert rep["leakage_counts"] == {"mathvista/remi": 6}
                assert {(x["kept"], x["dropped"]) for x in rep["leakage"]} == {
                    (k, d) for d, k in kept_of.items()
                }
                assert rep["label_conflicts"] == 1
                (c,) = rep["label_conflict_list"]
                assert (c["kept"], c["kept_answer"], c["dropped"], c["dropped_answer"]) == (
                    "MSR_mathvista_6",
                    "half",
                    "MSR_remi_8",
                    "quarter",
                )
                # images shared by both sources are listed, whether or not the items are one
                assert rep["shared_image_counts"]["mathvista/remi"] >= 4

            assert_that(out["report"], check, label="Report")


def test_conflict_detail_names_both_ids_and_answers():
    records, _, _ = planted_records()
    pair = [r for r in records if r["id"] in ("MSR_mathvista_6", "MSR_remi_8")]
    with TestPipeline() as p:
        out = p | beam.Create(pair) | DedupeRecords(DedupeConfig.from_block(), "drop_record")
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["reason"], d["detail"])),
            equal_to(
                [
                    (
                        "label_conflict",
                        "MSR_remi_8 is the same item as MSR_mathvista_6 (same question images, "
                        "equal question text) with another answer: MSR_mathvista_6 (kept) "
                        "answers 'half', MSR_remi_8 answers 'quarter'",
                    )
                ]
            ),
        )


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_image_shared_across_sources_with_other_questions_is_listed_not_dropped():
    astro = _jpeg(_photo("astronaut"))
    records = [_record("mathvista", 1, astro, q=Q[1]), _record("remi", 1, astro, q=Q[2])]
    with TestPipeline() as p:
        out = p | beam.Create(records) | DedupeRecords(DedupeConfig.from_block(), "drop_record")
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]),
            equal_to(["MSR_mathvista_1", "MSR_remi_1"]),
        )

        def check(reports):
            rep = reports[0]["dedupe"]
            assert rep["leakage"] == [] and rep["duplicate_items"] == {}
            (shared,) = rep["shared_images"]
            assert shared["sources"] == "mathvista/remi"
            assert shared["records"] == ["MSR_mathvista_1", "MSR_remi_1"]

        assert_that(out["report"], check, label="Report")


TEN = DedupeConfig.from_block({"max_image_uses": 10})


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
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
        out = p | "A" >> beam.Create(records) | "DropRecords" >> DedupeRecords(TEN, "drop_record")
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
            | "DropSegments" >> DedupeRecords(TEN, on_bad_image="drop_segment")
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
        out = p | "C" >> beam.Create(records[:10]) | "AtLimit" >> DedupeRecords(TEN, "drop_record")
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]),
            equal_to(sorted(ids)[:10] and [r["id"] for r in records[:10]]),
        )


def test_near_text_needs_the_same_images_and_is_verified():
    steps = (
        "How to Write a Thank You Note? Method 1: Writing the Note. Step 1: Choose a plain "
        "card or good paper, a simple folded card works for almost any occasion. Avoid "
        "cards with long printed messages, since your own words matter more than a poem "
        "someone else wrote. Keep a few blank cards at home so you can write the note on "
        "the same day you receive the gift, while the details are still fresh in mind"
    )
    near = steps.replace("almost", "nearly")
    assert text.jaccard(text.shingles(steps), text.shingles(near)) >= 0.8
    photo = _jpeg(_photo("rocket"))
    records = [
        _record("wikihow", 1, photo, category="PBL", q=steps, a="Step 2: write."),
        # the same picture, a near-equal text: the same item
        _record("wikihow", 2, photo, category="PBL", q=near, a="Step 2: write."),
        # a near-equal text on another picture: another item
        _record("wikihow", 3, make_image("w3", 300, 200), category="PBL", q=near,
                a="Step 2: write."),
        # the same templated question and answer on another picture: another item
        _record("mathvista", 27, _jpeg(_photo("astronaut")), q=KVQA, a="11"),
        _record("remi", 7, _jpeg(_photo("coffee")), q=KVQA + "  ", a="11"),
    ]  # fmt: skip
    with TestPipeline() as p:
        out = p | beam.Create(records) | DedupeRecords(DedupeConfig.from_block(), "drop_record")
        assert_that(
            out["records"] | beam.Map(lambda r: r["id"]),
            equal_to(["MSR_mathvista_27", "MSR_remi_7", "PBL_wikihow_1", "PBL_wikihow_3"]),
        )
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["source_id"], d["reason"], d["detail"])),
            equal_to(
                [
                    (
                        "2",
                        REASON_NEAR,
                        "PBL_wikihow_2 duplicates PBL_wikihow_1: same question images, "
                        "near-equal question text (word 5-gram Jaccard 0.8718)",
                    )
                ]
            ),
            label="Dead",
        )


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_near_text_only_for_text_categories():
    photo = _jpeg(_photo("astronaut"))
    records = [
        _record("mathvista", 1, photo, q=LONG, a="1"),
        _record("mathvista", 2, photo, q=LONG.replace("decimal number", "decimal value"), a="1"),
    ]
    for categories, kept in ((["PBL"], ["MSR_mathvista_1", "MSR_mathvista_2"]),
                             (["MSR"], ["MSR_mathvista_1"])):  # fmt: skip
        with TestPipeline() as p:
            out = (
                p
                | beam.Create(records)
                | DedupeRecords(
                    DedupeConfig.from_block({"text_categories": categories}), "drop_record"
                )
            )
            assert_that(out["records"] | beam.Map(lambda r: r["id"]), equal_to(kept))
