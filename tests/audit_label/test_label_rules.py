"""The pure rules of label suspicion: which items are checked, what the model is asked, how its
answer becomes ``scores.label`` (pipelines/audit/label.py, the server answer parser)."""

from __future__ import annotations

import math

import pytest

from pipelines.audit.label import (
    answers_agree,
    generated_scores,
    gold_label,
    label_item,
    option_scores,
    options_from_top_logprobs,
)
from pipelines.audit.label_handler import ServerSpec, request_body, scores_from_completion
from schemas import load_schema
from schemas.validation import validate_with
from tests.audit_label.conftest import mc_record, open_record, story_record


def _images(record) -> dict[str, bytes]:
    return {im["path"]: im["path"].encode() for im in record["images"]}


def _label_schema_issues(scores) -> list:
    schema = load_schema("record")
    wrapped = {"$defs": schema["$defs"], "$ref": "#/$defs/label_scores"}
    return validate_with(wrapped, scores)


def test_which_items_have_a_gold_label_to_check():
    assert gold_label(mc_record("a", gold="B")) == ("B", "")
    assert gold_label(open_record("b", gold="7")) == ("7", "")
    none, why = gold_label(story_record("c"))
    assert none is None and "no single gold label" in why
    listed = open_record("d") | {"answer_type": "list", "answer_value": [1, 2]}
    assert gold_label(listed)[0] is None
    wrong = mc_record("e") | {"answer_value": "Z"}
    assert gold_label(wrong)[0] is None and "not one of its option letters" in gold_label(wrong)[1]


def test_the_item_keeps_the_question_order_and_lists_the_options():
    record = mc_record("order", gold="C", n_options=3, n_images=2)
    item = label_item(record, _images(record))
    kinds = [k for k, _ in item.parts]
    assert kinds == ["text", "image", "image", "text"]
    assert [v for k, v in item.parts if k == "image"] == [0, 1]
    assert item.parts[-1][1].splitlines()[2:5] == ["A. shape 0", "B. shape 1", "C. shape 2"]
    assert item.options == ("A", "B", "C") and item.gold == "C" and item.method == "options"
    assert [data for _f, data in item.images] == [im["path"].encode() for im in record["images"]]
    with pytest.raises(ValueError, match="no single gold label"):
        label_item(story_record("s"), {})


@pytest.mark.parametrize(
    ("predicted", "gold", "answer_type", "precision", "agree"),
    [
        ("3", "3", "integer", None, True),
        ("The answer is 3.", "3", "integer", None, True),
        ("1,200", "1200", "integer", None, True),
        ("4", "3", "integer", None, False),
        ("three", "3", "integer", None, False),
        ("2.50", "2.5", "float", None, True),
        ("2.54", "2.5", "float", 1, True),
        ("2.56", "2.5", "float", 1, False),
        ("  Yes. ", "yes", "text", None, True),
        ("no", "yes", "text", None, False),
    ],
)
def test_answers_agree(predicted, gold, answer_type, precision, agree):
    assert answers_agree(predicted, gold, answer_type, precision) is agree


def test_suspicion_is_the_confidence_of_a_disagreeing_option():
    item = label_item(mc_record("s", gold="A"), _images(mc_record("s", gold="A")))
    disagree = option_scores(item, {"A": 0.2, "B": 0.7, "C": 0.1}, "m")
    assert (disagree["predicted"], disagree["agree"]) == ("B", False)
    assert disagree["suspicion"] == disagree["confidence"] == 0.7
    assert disagree["gold_probability"] == 0.2
    agree = option_scores(item, {"A": 0.6, "B": 0.3, "C": 0.1}, "m")
    assert (agree["agree"], agree["suspicion"], agree["confidence"]) == (True, 0.0, 0.6)
    tie = option_scores(item, {"A": 0.4, "B": 0.4, "C": 0.2}, "m")
    assert tie["predicted"] == "A", "ties go to the first option"
    for scores in (disagree, agree, tie):
        assert _label_schema_issues(scores) == []


def test_generated_answers_weigh_disagreement_by_the_tokens_probability():
    record = open_record("g", gold="3")
    item = label_item(record, _images(record))
    wrong = generated_scores(item, "5", [math.log(0.5), math.log(0.8)], "m")
    assert wrong["agree"] is False
    assert wrong["suspicion"] == wrong["confidence"] == round(math.sqrt(0.4), 6)
    right = generated_scores(item, "3", [math.log(0.9)], "m")
    assert (right["agree"], right["suspicion"]) == (True, 0.0)
    no_logprobs = generated_scores(item, "5", None, "m")
    assert no_logprobs["confidence"] is None and no_logprobs["suspicion"] is None
    for scores in (wrong, right, no_logprobs):
        assert _label_schema_issues(scores) == []


def test_options_from_a_servers_top_logprobs():
    top = [("B", math.log(0.5)), (" B", math.log(0.1)), ("A", math.log(0.2)), ("x", -0.5)]
    probs, mass = options_from_top_logprobs(("A", "B", "C"), top)
    assert mass == pytest.approx(0.8)
    assert probs == pytest.approx({"A": 0.25, "B": 0.75, "C": 0.0})
    assert options_from_top_logprobs(("A", "B"), [("x", -0.1)]) == ({}, 0.0)


def test_a_completion_without_logprobs_gives_the_letter_but_no_suspicion():
    record = mc_record("n", gold="A")
    item = label_item(record, _images(record))
    completion = {"choices": [{"message": {"role": "assistant", "content": "B."}}]}
    scores = scores_from_completion(item, completion, "served")
    assert (scores["predicted"], scores["agree"], scores["suspicion"]) == ("B", False, None)
    assert _label_schema_issues(scores) == []
    nothing = {"choices": [{"message": {"content": "I cannot tell"}}]}
    assert scores_from_completion(item, nothing, "served")["scored"] is False


def test_the_request_carries_text_and_images_in_order_as_data_urls():
    record = mc_record("req", gold="A", n_images=2)
    item = label_item(record, _images(record))
    body = request_body(item, ServerSpec("http://127.0.0.1:1/v1", "served", top_logprobs=5))
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "image_url", "text"]
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert (body["max_tokens"], body["top_logprobs"], body["logprobs"]) == (1, 5, True)
    assert body["temperature"] == 0
