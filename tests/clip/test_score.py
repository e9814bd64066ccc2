"""The open_clip handler and the scoring stage, on the tiny local checkpoint (no network)."""

from __future__ import annotations

import io
import os
from dataclasses import replace

import apache_beam as beam
import imagehash
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipelines.clip import FindEmbeddingDuplicates, ScoreImageText, duplicate_edges
from pipelines.clip.model import IMAGE, TEXT, ClipInput, ImagePreprocessor, preprocess_config
from pipelines.clip.neardup import embedding_duplicate_pairs
from pipelines.config import DedupeConfig
from pipelines.dedupe.hamming import clusters
from schemas.deadletter import DEAD
from schemas.validation import validate_record
from tests.clip.conftest import make_record
from tools.sample_images import make_image

DEFAULT_PHASH_DISTANCE = DedupeConfig.from_block().phash_distance


def test_handler_embeds_keyed_batches_offline(clip_settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    handler = KeyedModelHandler(clip_settings.model_handler())
    model = handler.load_model()  # the local checkpoint, through create_model_and_transforms
    pre = ImagePreprocessor(preprocess_config(clip_settings.spec))
    tok = __import__("open_clip").get_tokenizer(clip_settings.spec.model)
    batch = [
        ("k-img-a", ClipInput(IMAGE, "a", pre(make_image("a")))),
        ("k-txt", ClipInput(TEXT, "t", tok(["a red square"])[0].numpy())),
        ("k-img-b", ClipInput(IMAGE, "b", pre(make_image("b", 300, 500, fmt="PNG")))),
    ]
    results = list(handler.run_inference(batch, model))
    assert [k for k, _ in results] == ["k-img-a", "k-txt", "k-img-b"]
    assert [r.example for _, r in results] == [(IMAGE, "a"), (TEXT, "t"), (IMAGE, "b")]
    for _, r in results:
        assert r.model_id == clip_settings.spec.model_id
        assert r.inference.shape == (64,) and abs(np.linalg.norm(r.inference) - 1) < 1e-4
    # a batch of one kind only works too, and gives the same embedding
    again = list(handler.run_inference(batch[:1], model))
    np.testing.assert_allclose(again[0][1].inference, results[0][1].inference, atol=1e-5)
    assert clip_settings.model_handler().batch_elements_kwargs() == {
        "min_batch_size": 1,
        "max_batch_size": 4,
    }


def test_share_across_processes_flag(clip_settings):
    assert not clip_settings.model_handler().share_model_across_processes()
    shared = KeyedModelHandler(replace(clip_settings, share_model=True).model_handler())
    assert shared.share_model_across_processes()


def test_score_image_text_scores_records_and_dead_letters_bad_images(
    clip_settings, tiny_checkpoint, image_store
):
    model_id = f"mmloom-tiny-clip/{os.path.basename(tiny_checkpoint)}"
    good_sa = make_record("SA", n=3, seed="good-sa", store=image_store)
    good_msr = make_record("MSR", n=2, seed="good-msr", store=image_store)
    broken = make_record("SA", n=2, seed="broken", store=image_store)
    # the store's file says JPEG (so LoadImages accepted it) but the data stops after the header
    stored = image_store.uri(broken["images"][1]["path"])
    with open(stored, "rb") as f:
        head = f.read(200)
    with open(stored, "wb") as f:
        f.write(head)
    # a record whose image never reached the store
    missing = make_record("MSR", n=1, seed="missing")
    no_text = make_record("MSR", n=1, seed="no-text", store=image_store)
    no_text["question"][0]["text"] = "   "
    records = [good_sa, good_msr, broken, missing, no_text]
    with TestPipeline() as p:
        out = p | beam.Create(records) | ScoreImageText(clip_settings, image_store)

        def check_records(recs):
            by_id = {r["id"]: r for r in recs}
            assert set(by_id) == {good_sa["id"], good_msr["id"], no_text["id"]}
            for src in (good_sa, good_msr):
                r = by_id[src["id"]]
                clip = r["scores"]["clip"]
                assert clip["scored"] and clip["model"] == model_id
                assert [p["image"] for p in clip["pairs"]] == [
                    s["image"] for s in src["question"] if s["image"]
                ]
                assert all(-1 <= p["score"] <= 1 for p in clip["pairs"])
                assert clip["min_score"] == min(p["score"] for p in clip["pairs"])
                # the record keeps everything else; no image bytes travel with it
                assert all("bytes" not in im for im in r["images"])
                assert {k: v for k, v in r.items() if k != "scores"} == {
                    k: v for k, v in src.items() if k != "scores"
                }
                assert validate_record(r) == []
            sa = by_id[good_sa["id"]]["scores"]["clip"]["pairs"]
            assert [p["text_from"] for p in sa] == [f"/question/{i}/text" for i in (1, 2, 3)]
            nt = by_id[no_text["id"]]["scores"]["clip"]
            assert not nt["scored"] and "no text" in nt["reason"]

        assert_that(out["records"], check_records, label="Records")
        assert_that(
            out[DEAD] | beam.Map(lambda d: (d["stage"], d["reason"], d["source_id"])),
            equal_to(
                [
                    ("score_clip", "image_undecodable", "broken"),
                    ("score_clip", "image_not_in_store", "missing"),
                ]
            ),
            label="Dead",
        )
        assert_that(
            out["image_embeddings"] | beam.Keys(),
            equal_to([im["sha256"] for r in (good_sa, good_msr) for im in r["images"]]),
            label="Embeddings",
        )


def test_embedding_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    x = np.concatenate([base, base[:5] + 0.05 * rng.normal(size=(5, 16)).astype(np.float32)])
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    expected = {(i, j) for i in range(len(x)) for j in range(i + 1, len(x)) if sims[i, j] >= 0.95}
    assert len(expected) >= 5
    for block in (7, 64):  # tiles that split the matrix unevenly, and one tile
        got = embedding_duplicate_pairs(x, 0.95, block=block, device="cpu")
        assert {(i, j) for i, j, _ in got} == expected
        for i, j, c in got:
            assert abs(c - sims[i, j]) < 1e-5
    # one image listed twice is not its own duplicate
    assert duplicate_edges([("a", base[0]), ("a", base[0])]) == []


def _jpeg(im: Image.Image, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_embedding_dedupe_clusters_crops_and_rerenders_phash_misses(clip_settings, image_store):
    """Plant a crop and a mirrored re-render of two pictures; pHash misses them, CLIP finds them."""
    planted = {}
    for seed in ("plant-0", "plant-4"):
        original = make_image(seed, 320, 240)
        im = Image.open(io.BytesIO(original)).convert("RGB")
        crop = _jpeg(im.crop((32, 24, 288, 216)))
        rerender = _jpeg(
            im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(
                (200, 150), Image.Resampling.BILINEAR
            ),
            quality=40,
        )
        for copy in (crop, rerender):
            distance = imagehash.phash(im) - imagehash.phash(Image.open(io.BytesIO(copy)))
            assert distance > DEFAULT_PHASH_DISTANCE
        planted[seed] = [original, crop, rerender]
    others = [make_image(f"other-{i}", 320, 240) for i in range(4)]
    # each picture in its own record, as the build would see them
    records = [
        make_record("MSR", n=1, seed=f"{seed}-{i}", images=[data], store=image_store)
        for seed, datas in planted.items()
        for i, data in enumerate(datas)
    ] + [
        make_record("MSR", n=1, seed=f"other-{i}", images=[d], store=image_store)
        for i, d in enumerate(others)
    ]
    sha = {r["provenance"]["source_id"]: r["images"][0]["sha256"] for r in records}
    expected = sorted(
        [sorted(sha[f"{seed}-{i}"] for i in range(3)) for seed in planted]
        + [[sha[f"other-{i}"]] for i in range(4)],
        key=lambda g: g[0],
    )
    with TestPipeline() as p:
        scored = p | beam.Create(records) | ScoreImageText(clip_settings, image_store)
        edges = scored["image_embeddings"] | FindEmbeddingDuplicates(
            clip_settings.embedding_duplicate_threshold
        )
        nodes = scored["image_embeddings"] | beam.Keys()
        groups = (
            (
                edges | "EdgeEnds" >> beam.Map(lambda e: (e[0], e[1])),
                nodes | "SelfEdges" >> beam.Map(lambda s: (s, s)),
            )
            | beam.Flatten()
            | beam.combiners.ToList()
            | beam.Map(clusters)
        )
        assert_that(groups, equal_to([expected]), label="Clusters")

        def check_cosines(found):
            assert len(found) >= 4  # each planted triple is connected by at least two edges
            assert all(0.95 <= e[2] <= 1.0 and e[0] < e[1] for e in found)

        assert_that(edges, check_cosines, label="Cosines")
