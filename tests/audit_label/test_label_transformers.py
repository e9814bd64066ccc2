"""The tiny local VLM (tools/make_tiny_vlm.py) through the transformers handler and the stages:
the real loading (from_pretrained on a folder, local files only), Beam's batching and the
scoring path, with random weights (the numbers mean nothing; their consistency does)."""

from __future__ import annotations

import math

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audit.label import label_item, softmax
from pipelines.audit.label_flag import FlagLabelSuspect
from pipelines.audit.label_handler import TransformersLabelHandler
from pipelines.audit.label_model import VlmSpec
from pipelines.audit.label_score import ScoreLabelAgreement
from schemas.deadletter import DEAD
from schemas.store import ImageStore
from tests.audit_label.conftest import mc_record, open_record, story_record

pytestmark = pytest.mark.slow  # loads transformers and runs a model


@pytest.fixture(scope="module")
def handler(tiny_vlm) -> TransformersLabelHandler:
    return TransformersLabelHandler(VlmSpec(tiny_vlm, "cpu", 6), max_batch_size=3)


@pytest.fixture(scope="module")
def model(handler):
    return handler.load_model()


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """Two multiple-choice and two open-ended items, images read back from a store."""
    store = ImageStore(str(tmp_path_factory.mktemp("store")))
    records = [
        mc_record("m1", gold="A", store=store),
        open_record("o1", gold="3", store=store),
        mc_record("m2", gold="B", n_options=4, n_images=1, store=store),
        open_record("o2", gold="yes", answer_type="text", store=store),
    ]
    return [
        label_item(r, {im["path"]: store.get(im["path"]) for im in r["images"]}) for r in records
    ]


def test_the_model_loads_from_its_folder_with_local_files_only(model, tiny_vlm):
    assert model.device == "cpu"
    assert type(model.model).__name__ == "LlavaForConditionalGeneration"
    assert model.spec.model_id == "mmloom-tiny-vlm"


def test_scores_are_the_same_whatever_batch_an_item_is_in(handler, model, items):
    together = {r.example: r.inference for r in handler.run_inference(items, model)}
    alone = {r.example: r.inference for item in items for r in handler.run_inference([item], model)}
    reversed_ = {r.example: r.inference for r in handler.run_inference(items[::-1], model)}
    assert together == alone == reversed_
    assert all(s["scored"] for s in together.values())
    assert {s["method"] for s in together.values()} == {"options", "generate"}


def test_option_probabilities_are_the_letters_next_token_probabilities(model, items):
    """Two paths through the model agree: scoring each answered option's letter (padded
    batch of full sequences) and the next-token distribution after the bare prompt."""
    item = items[2]
    probs = model.option_probabilities(item)
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
    vocab = model.next_token_logprobs(item)
    ids = [model.tokenizer.convert_tokens_to_ids(label) for label in item.options]
    expected = softmax([vocab[i] for i in ids])
    assert [probs[label] for label in item.options] == pytest.approx(expected, abs=1e-5)


def test_an_undecodable_image_is_an_unchecked_item_not_a_crash(handler, model, items):
    item = items[0]
    broken = type(item)(**{**item.__dict__, "images": (("jpeg", b"not an image"),) * 2})
    (result,) = handler.run_inference([broken], model)
    assert result.inference["scored"] is False
    assert "UnidentifiedImageError" in result.inference["reason"]


def test_the_stages_score_flag_and_drop_nothing(tiny_vlm, image_store):
    records = [
        mc_record("s1", gold="A", store=image_store),
        mc_record("s2", gold="C", n_options=4, store=image_store),
        open_record("s3", gold="2", store=image_store),
        story_record("s4", store=image_store),
    ]
    missing = mc_record("s5", gold="B")  # its images were never written to the store
    handler = TransformersLabelHandler(VlmSpec(tiny_vlm, "cpu", 4), max_batch_size=2)
    p = TestPipeline()
    scored = p | beam.Create([*records, missing]) | ScoreLabelAgreement(handler, image_store)
    flagged = scored.records | FlagLabelSuspect(threshold=0.0)

    def check(out):
        by_id = {r["id"]: r for r in out}
        assert sorted(by_id) == sorted(r["id"] for r in [*records, missing])
        for r in records[:3]:
            label = by_id[r["id"]]["scores"]["label"]
            assert label["scored"] and label["model"] == "mmloom-tiny-vlm"
            codes = [f["code"] for f in by_id[r["id"]]["audit"]["flags"]]
            assert codes == ([] if label["agree"] else ["label_suspect"])
        story = by_id[records[3]["id"]]
        assert story["scores"]["label"]["scored"] is False and story["audit"] is None
        lost = by_id[missing["id"]]["scores"]["label"]
        assert lost["scored"] is False and "image store" in lost["reason"]
        assert all(r["scores"]["clip"] == records[0]["scores"]["clip"] for r in out)

    assert_that(flagged.records, check, label="records")
    assert_that(scored[DEAD], equal_to([]), label="no dead letters")
    p.run().wait_until_finish()
