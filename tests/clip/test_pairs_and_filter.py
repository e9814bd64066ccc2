"""Pure functions: which text an image is scored against, filter decisions, settings."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.clip import NO_CLIP_REASON, ClipSettings, FilterByClipScore, SkipClipScoring
from pipelines.clip.filter import BELOW_QUANTILE, BELOW_THRESHOLD, quantile_cutoff
from pipelines.clip.pairs import NO_IMAGES, NO_TEXT, clip_pairs
from pipelines.config import ClipConfig
from schemas.deadletter import DEAD
from schemas.validation import validate_record
from tests.clip.conftest import make_record


def test_sa_images_pair_with_their_own_sentence():
    rec = make_record("SA", n=2, seed="own")
    pairs = clip_pairs(rec)
    assert [p.text_from for p in pairs] == ["/question/1/text", "/question/2/text"]
    assert [p.text for p in pairs] == ["sentence 0 of own", "sentence 1 of own"]
    assert [p.image for p in pairs] == [s["image"] for s in rec["question"][1:]]


def test_sa_image_without_text_falls_back_to_question_text():
    rec = make_record("SA", n=2, seed="fb", question_texts=["first", "  "])
    pairs = clip_pairs(rec)
    assert pairs[0].text_from == "/question/1/text"
    # the question's text segments, joined: the prompt and the first sentence
    assert pairs[1].text_from == "/question" and pairs[1].text == "Continue the story. first"


def test_msr_images_pair_with_the_question_text():
    rec = make_record("MSR", n=3, seed="msr")
    pairs = clip_pairs(rec)
    assert {p.text_from for p in pairs} == {"/question/0/text"}
    assert len(pairs) == 3


def test_unscorable_records_say_why():
    rec = make_record("MSR", n=1, seed="nt")
    rec["question"][0]["text"] = None
    with pytest.raises(ValueError, match="no text"):
        clip_pairs(rec)
    assert NO_TEXT.startswith("an image segment")
    rec = make_record("MSR", n=1, seed="ni")
    rec["question"] = [s for s in rec["question"] if s["image"] is None]
    with pytest.raises(ValueError) as err:
        clip_pairs(rec)
    assert str(err.value) == NO_IMAGES


def _scored(seed: str, category: str, source: str, min_score: float) -> dict:
    rec = make_record(category, n=1, seed=seed)
    rec["provenance"]["source"] = source
    rec["scores"]["clip"] = {
        "scored": True,
        "model": "m/x",
        "reason": None,
        "pairs": [
            {"image": rec["images"][0]["path"], "text_from": "/question/0/text", "score": min_score}
        ],
        "min_score": min_score,
    }
    return rec


def test_quantile_cutoff_keeps_exactly_the_top_fraction():
    ranked = [(0.1, "a"), (0.3, "b"), (0.3, "c"), (0.2, "d"), (0.5, "e")]
    assert quantile_cutoff(ranked, 0.4) == (-0.3, "b")  # e, b kept; c ties but ranks after b
    assert quantile_cutoff(ranked, 1.0) == (-0.1, "a")
    assert quantile_cutoff(ranked, 0.01) == (-0.5, "e")


def test_filter_drops_exactly_the_records_below_threshold():
    scores = {"lo1": 0.10, "lo2": 0.199999, "eq": 0.2, "hi": 0.31}
    records = [_scored(s, "SA", "vist", v) for s, v in scores.items()]
    unscored = make_record("SA", n=1, seed="unscored")  # scored: false passes
    msr_low = _scored("msrlow", "MSR", "remi", 0.01)  # no MSR threshold: kept
    with TestPipeline() as p:
        out = p | beam.Create([*records, unscored, msr_low]) | FilterByClipScore({"SA": 0.2})
        assert_that(
            out["records"] | "Ids" >> beam.Map(lambda r: r["id"]),
            equal_to([records[2]["id"], records[3]["id"], unscored["id"], msr_low["id"]]),
            label="Kept",
        )
        dead = out[DEAD] | "Parse" >> beam.Map(
            lambda d: (d["stage"], d["reason"], d["source_id"], json.loads(d["detail"]))
        )

        def check(dls):
            assert sorted((d[2], d[3]["min_score"], d[3]["threshold"]) for d in dls) == [
                ("lo1", 0.10, 0.2),
                ("lo2", 0.199999, 0.2),
            ]
            assert {(d[0], d[1]) for d in dls} == {("filter_clip", BELOW_THRESHOLD)}

        assert_that(dead, check, label="Dead")


def test_filter_keeps_top_fraction_per_source():
    vist = [_scored(f"v{i}", "SA", "vist", i / 10) for i in range(10)]
    coco = [_scored(f"c{i}", "IF", "coco", i / 100) for i in range(3)]
    with TestPipeline() as p:
        out = p | beam.Create(vist + coco) | FilterByClipScore(keep_top_fraction={"vist": 0.3})
        assert_that(
            out["records"] | "Ids" >> beam.Map(lambda r: r["provenance"]["source_id"]),
            equal_to(["v9", "v8", "v7", "c0", "c1", "c2"]),
            label="Kept",
        )
        assert_that(
            out[DEAD]
            | "Reasons" >> beam.Map(lambda d: (d["reason"], json.loads(d["detail"])["threshold"])),
            equal_to([(BELOW_QUANTILE, 0.7)] * 7),
            label="Dead",
        )


def test_no_clip_marks_records_not_scored():
    settings = ClipSettings.from_config(ClipConfig.from_block({"model": "ViT-B-32"}, no_clip=True))
    assert not settings.enabled and settings.skip_reason == NO_CLIP_REASON
    rec = make_record("SA", n=1, seed="noclip")
    with TestPipeline() as p:
        out = (p | beam.Create([rec]) | SkipClipScoring(settings.skip_reason)).records

        def check(recs):
            (r,) = recs
            assert r["scores"]["clip"] == {
                "scored": False,
                "model": None,
                "reason": NO_CLIP_REASON,
                "pairs": [],
                "min_score": None,
            }
            assert validate_record(r) == []

        assert_that(out, check)


def test_settings_defaults_and_relative_checkpoint(tmp_path):
    s = ClipSettings.from_config(ClipConfig.from_block(None))
    assert s.enabled and s.spec.model == "ViT-L-14" and s.spec.pretrained == "openai"
    assert s.spec.model_id == "ViT-L-14/openai" and s.embedding_duplicate_threshold == 0.95
    s = ClipSettings.from_config(
        ClipConfig.from_block({"checkpoint": "w/tiny.safetensors"}, base_dir=str(tmp_path))
    )
    assert s.spec.checkpoint == str(tmp_path / "w" / "tiny.safetensors")
    assert s.spec.model_id == "ViT-L-14/tiny.safetensors"
