"""The blind-answerability audit: what is scored, the formulas, the flags, the tiny local LM
through the real loading and RunInference path, fixed-shape determinism, and the preflight."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.audit.blind_flag import (
    ANSWER_LEAKAGE,
    BLIND_ANSWERABLE,
    FlagBlindAnswerable,
    SkipBlindScoring,
    blind_flags,
)
from pipelines.audit.blind_handler import BlindLMHandler
from pipelines.audit.blind_items import (
    GOLD_NOT_AN_OPTION,
    MULTIPLE_CHOICE,
    NO_QUESTION_TEXT,
    OPEN_ENDED,
    WITH_QUESTION,
    WITHOUT_QUESTION,
    BlindItem,
    Continuation,
    blind_item,
    blind_scores,
    mean_logprob,
    not_scored_blind,
)
from pipelines.audit.blind_model import (
    CPU_FORWARD_ROWS,
    BlindInput,
    bucket_length,
    encode,
    forward_rows,
    load_tokenizer,
)
from pipelines.cli import main
from pipelines.config import NO_BLIND_REASON, BlindConfig, parse_config
from schemas.audit import flag_codes
from schemas.deadletter import DEAD
from schemas.errors import PipelineConfigError
from schemas.records import seg
from tests.conftest import REPO, SAMPLE_CONFIG


def blind_config(tiny_lm: str, **kw) -> BlindConfig:
    return BlindConfig.from_block({"enabled": True, "checkpoint": tiny_lm, **kw})


def mc_record(draft_factory, rid: str = "msr_remi_test_1", gold: str = "B") -> dict:
    return draft_factory(
        id=f"MSR_{rid}",
        question_format=MULTIPLE_CHOICE,
        question=[seg("Which shape has four equal sides?\nChoices:\n(A) circle\n(B) square")],
        options=[
            {"label": "A", "text": "circle"},
            {"label": "B", "text": "square"},
            {"label": "C", "text": "a long triangle with three unequal sides"},
        ],
        answer=[seg("(B) square")],
        answer_value=gold,
    )


def open_record(draft_factory, rid: str = "msr_remi_test_2", answer: str = "42") -> dict:
    return draft_factory(
        id=f"MSR_{rid}", question=[seg("What is six times seven?")], answer=[seg(answer)]
    )


# --- what is scored, and the formulas (pure) ------------------------------------------------


def test_a_multiple_choice_item_scores_each_option_after_the_question(draft_factory):
    item = blind_item(mc_record(draft_factory))
    assert item.kind == MULTIPLE_CHOICE and item.gold == "B"
    assert [c.ref for c in item.continuations] == ["option/A", "option/B", "option/C"]
    assert {c.context for c in item.continuations} == {
        "Which shape has four equal sides?\nChoices:\n(A) circle\n(B) square\nAnswer:"
    }
    assert item.continuations[1].continuation == " square"


def test_an_open_item_scores_its_answer_with_and_without_the_question(draft_factory):
    record = open_record(draft_factory)
    record["question"] = [seg("What is"), seg(None, "images/x.png"), seg(" six times seven? ")]
    item = blind_item(record)
    assert item.kind == OPEN_ENDED
    with_q, without_q = item.continuations
    assert (with_q.ref, with_q.context, with_q.continuation) == (
        WITH_QUESTION,
        "What is\nsix times seven?\nAnswer:",  # images left out, texts joined by newlines
        " 42",
    )
    assert (without_q.ref, without_q.context, without_q.continuation) == (
        WITHOUT_QUESTION,
        "Answer:",
        " 42",
    )


def test_items_that_cannot_be_scored_blind_say_why(draft_factory):
    images_only = open_record(draft_factory)
    images_only["question"] = [seg(None, "images/x.png")]
    with pytest.raises(ValueError, match=re.escape(NO_QUESTION_TEXT)):
        blind_item(images_only)
    with pytest.raises(ValueError, match=re.escape(GOLD_NOT_AN_OPTION)):
        blind_item(mc_record(draft_factory, gold="Z"))
    no_answer = open_record(draft_factory)
    no_answer["answer"] = [seg(None, "images/y.png")]
    with pytest.raises(ValueError, match="no text"):
        blind_item(no_answer)


def test_margin_is_the_gold_mean_minus_the_best_other_mean():
    item = BlindItem(
        MULTIPLE_CHOICE,
        tuple(Continuation(f"option/{x}", "q", " o") for x in "ABC"),
        gold="B",
    )
    results = {
        "option/A": ([-1.0, -3.0], False),  # mean -2
        "option/B": ([-0.5], True),  # mean -0.5 (gold)
        "option/C": ([-1.0, -1.0, -1.0], False),  # mean -1: the best other
    }
    scores = blind_scores(item, results, "m")
    assert scores["scored"] and scores["kind"] == MULTIPLE_CHOICE and scores["truncated"]
    assert scores["options"] == [
        {"label": "A", "logprob": -2.0, "tokens": 2},
        {"label": "B", "logprob": -0.5, "tokens": 1},
        {"label": "C", "logprob": -1.0, "tokens": 3},
    ]
    assert scores["gold"] == "B" and scores["margin"] == 0.5
    assert scores["leakage"] is None and scores["with_question"] is None
    losing = blind_scores(item, {**results, "option/B": ([-4.0], False)}, "m")
    assert losing["margin"] == -3.0 and not losing["truncated"]


def test_leakage_is_the_answers_gain_per_token_from_the_question():
    item = BlindItem(
        OPEN_ENDED,
        (Continuation(WITH_QUESTION, "q\nAnswer:", " a"), Continuation(WITHOUT_QUESTION, "", "")),
    )
    scores = blind_scores(
        item, {WITH_QUESTION: ([-1.0, -2.0], False), WITHOUT_QUESTION: ([-3.0, -4.0], False)}, "m"
    )
    assert (scores["with_question"], scores["without_question"], scores["leakage"]) == (
        -1.5,
        -3.5,
        2.0,
    )
    assert scores["options"] == [] and scores["margin"] is None
    assert set(scores) == set(not_scored_blind("x"))


def test_mean_logprob_is_exact_and_order_free():
    values = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    exact = math.fsum(float(v) for v in values) / 1000
    assert mean_logprob(values) == exact == mean_logprob(values[::-1])
    with pytest.raises(ValueError):
        mean_logprob([])


# --- deciding: flags, never drops -------------------------------------------------------------


def _with_blind(record: dict, **scores) -> dict:
    return {**record, "scores": {"blind": {**not_scored_blind(""), "scored": True, **scores}}}


def test_flags_at_and_above_the_thresholds_only(draft_factory):
    r = draft_factory()
    mc = _with_blind(r, kind=MULTIPLE_CHOICE, margin=0.5)
    assert [f["code"] for f in blind_flags(mc, 0.5, 1.0)] == [BLIND_ANSWERABLE]
    assert blind_flags(mc, 0.6, 1.0) == []
    flagged = blind_flags(mc, 0.25, 1.0)[0]
    assert (flagged["figure"], flagged["threshold"]) == (0.5, 0.25)
    op = _with_blind(r, kind=OPEN_ENDED, leakage=1.0)
    assert [f["code"] for f in blind_flags(op, 0.5, 1.0)] == [ANSWER_LEAKAGE]
    assert blind_flags(op, 0.5, 1.5) == []
    not_scored = {**r, "scores": {"blind": not_scored_blind("off")}}
    assert blind_flags(not_scored, 0.0, -100.0) is None


def test_flag_stage_keeps_every_record_and_marks_audited_ones(draft_factory):
    r = draft_factory()
    records = [
        {**_with_blind(r, kind=MULTIPLE_CHOICE, margin=2.0), "id": "a"},
        {**_with_blind(r, kind=MULTIPLE_CHOICE, margin=0.1), "id": "b"},
        {**_with_blind(r, kind=OPEN_ENDED, leakage=3.0), "id": "c"},
        {**r, "id": "d", "scores": {"blind": not_scored_blind("off")}, "audit": None},
    ]
    with TestPipeline() as p:
        out = p | beam.Create(records) | FlagBlindAnswerable(1.0, 1.0)
        codes = out["records"] | beam.Map(lambda x: (x["id"], x["audit"], flag_codes(x)))
        assert_that(
            codes | "IdCodes" >> beam.Map(lambda t: (t[0], tuple(t[2]), t[1] is None)),
            equal_to(
                [
                    ("a", (BLIND_ANSWERABLE,), False),
                    ("b", (), False),  # audited, nothing found: {"flags": []}
                    ("c", (ANSWER_LEAKAGE,), False),
                    ("d", (), True),  # not scored: not audited by this stage
                ]
            ),
        )
        assert_that(out[DEAD], equal_to([]), label="NoDead")


def test_skip_stage_marks_records_not_scored(draft_factory):
    with TestPipeline() as p:
        out = p | beam.Create([draft_factory()]) | SkipBlindScoring(NO_BLIND_REASON)
        assert_that(
            out["records"] | beam.Map(lambda r: r["scores"]["blind"]),
            equal_to([not_scored_blind(NO_BLIND_REASON)]),
        )


# --- the tiny LM: shapes, batches, the real path ---------------------------------------------


def test_bucket_length_and_forward_rows():
    assert [bucket_length(n, 256) for n in (1, 16, 17, 100, 129, 256)] == [
        16,
        16,
        32,
        128,
        256,
        256,
    ]
    assert bucket_length(300, 300) == 300  # capped at max_length
    with pytest.raises(ValueError):
        bucket_length(257, 256)
    assert forward_rows("cpu") == CPU_FORWARD_ROWS
    assert forward_rows("cpu", 3) == 3
    assert forward_rows("cuda", 1024) == 16


def test_encode_keeps_the_answer_start_and_the_question_end(tiny_lm):
    spec = _spec(tiny_lm)
    tok = load_tokenizer(spec)
    short = encode(tok, "Q?\nAnswer:", " yes", 64)
    assert not short.truncated and short.tokens[0] == tok.bos_token_id
    assert short.start == 1 + len("Q?\nAnswer:") and len(short.tokens) == short.start + 4
    long = encode(tok, "x" * 100 + "END\nAnswer:", " " + "y" * 100, 64)
    assert long.truncated and len(long.tokens) == 64 and long.start == 32
    assert tok.decode(long.tokens[:32]).endswith("END\nAnswer:")  # the question's end
    assert tok.decode(long.tokens[32:]) == " " + "y" * 31  # the answer's start


def _spec(tiny_lm: str, **kw):
    from pipelines.audit.blind_model import blind_spec

    return blind_spec(blind_config(tiny_lm, **kw))


def _inputs(tok, texts: list[tuple[str, str]], max_length: int = 256) -> list[BlindInput]:
    return [encode(tok, c, x, max_length)._replace(ref=f"{i}") for i, (c, x) in enumerate(texts)]


TARGET = ("Which is larger, 3 or 5?\nAnswer:", " 5")
OTHERS = [
    (f"Question number {i} {'with more words ' * (i % 4)}?\nAnswer:", f" answer {'z' * (7 * i)}")
    for i in range(14)
]


@pytest.fixture(params=[4, 64], ids=["max_batch_4", "max_batch_64"])
def handler_and_model(request, tiny_lm):
    handler = BlindLMHandler(_spec(tiny_lm), max_batch_size=request.param)
    return handler, handler.load_model()


def test_logprobs_do_not_depend_on_batch_composition(handler_and_model):
    handler, model = handler_and_model
    tok = load_tokenizer(handler.spec)
    target = _inputs(tok, [TARGET])[0]._replace(ref="target")
    others = _inputs(tok, OTHERS)
    seen = []
    for size in (1, 3, 8, 11, 15):
        for pos in sorted({0, size // 2, size - 1}):
            rest = others[: size - 1]
            batch = [*rest[:pos], target, *rest[pos:]]
            results = {r.example[0]: r.inference for r in handler.run_inference(batch, model)}
            seen.append(results["target"])
    assert seen[0].dtype == np.float32 and len(seen[0]) == len(tok.encode(" 5"))
    assert all(s.tobytes() == seen[0].tobytes() for s in seen[1:])


def test_every_forward_pass_has_fixed_rows_and_the_texts_bucket(handler_and_model, monkeypatch):
    handler, model = handler_and_model
    tok = load_tokenizer(handler.spec)
    shapes = []
    forward = model._forward

    def spy(ids):
        shapes.append(ids.shape)
        return forward(ids)

    monkeypatch.setattr(model, "_forward", spy)
    batch = _inputs(tok, OTHERS)
    handler.run_inference(batch, model)
    buckets = {bucket_length(len(b.tokens), 256) for b in batch}
    assert {rows for rows, _ in shapes} == {model.forward_rows}
    assert {length for _, length in shapes} == buckets and len(buckets) > 1


def test_logprobs_are_the_models_next_token_log_softmax(handler_and_model):
    handler, model = handler_and_model
    tok = load_tokenizer(handler.spec)
    item = _inputs(tok, [TARGET])[0]
    got = next(iter(handler.run_inference([item], model))).inference
    with torch.inference_mode():
        logits = model.model(input_ids=torch.from_numpy(item.tokens)[None]).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    want = [float(logp[i - 1, item.tokens[i]]) for i in range(item.start, len(item.tokens))]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 path)")
def test_cuda_runs_bf16_and_is_batch_independent(tiny_lm):
    handler = BlindLMHandler(_spec(tiny_lm, device="cuda"), max_batch_size=64)
    model = handler.load_model()
    assert model.device == "cuda" and model.model.dtype == torch.bfloat16
    assert model.forward_rows == 16
    tok = load_tokenizer(handler.spec)
    target = _inputs(tok, [TARGET])[0]._replace(ref="target")
    others = _inputs(tok, OTHERS)
    seen = []
    for size in (1, 9, 15):
        batch = [*others[: size - 1], target]
        results = {r.example[0]: r.inference for r in handler.run_inference(batch, model)}
        seen.append(results["target"])
    assert all(np.isfinite(s).all() and s.tobytes() == seen[0].tobytes() for s in seen)


def test_score_stage_writes_scores_blind_for_every_record(tiny_lm, draft_factory):
    from pipelines.audit.blind import ScoreBlindAnswerability

    images_only = open_record(draft_factory, "msr_remi_test_3")
    images_only["question"] = [seg(None, "images/x.png")]
    records = [
        mc_record(draft_factory),
        open_record(draft_factory),
        open_record(draft_factory, "msr_remi_test_4", answer="forty-two " * 80),
        images_only,
    ]
    with TestPipeline() as p:
        out = p | beam.Create(records) | ScoreBlindAnswerability(blind_config(tiny_lm))
        flagged = out["records"] | FlagBlindAnswerable(0.0, -100.0)

        def check(rows):
            by_id = {r["id"]: r for r in rows}
            assert len(rows) == len(records) == len(by_id)
            mc = by_id["MSR_msr_remi_test_1"]["scores"]["blind"]
            assert mc["scored"] and mc["kind"] == MULTIPLE_CHOICE and mc["gold"] == "B"
            assert mc["model"] == "mmloom-tiny-lm"
            assert [o["label"] for o in mc["options"]] == ["A", "B", "C"]
            best_other = max(mc["options"][0]["logprob"], mc["options"][2]["logprob"])
            assert mc["margin"] == pytest.approx(mc["options"][1]["logprob"] - best_other, abs=2e-6)
            op = by_id["MSR_msr_remi_test_2"]["scores"]["blind"]
            assert op["kind"] == OPEN_ENDED and op["with_question"] < 0 and not op["truncated"]
            assert op["leakage"] == pytest.approx(
                op["with_question"] - op["without_question"], abs=2e-6
            )
            assert by_id["MSR_msr_remi_test_4"]["scores"]["blind"]["truncated"]
            none = by_id["MSR_msr_remi_test_3"]["scores"]["blind"]
            assert none == not_scored_blind(NO_QUESTION_TEXT)
            # threshold -100: every scored open item is flagged; MC flagged iff margin >= 0
            assert flag_codes(by_id["MSR_msr_remi_test_2"]) == [ANSWER_LEAKAGE]
            assert flag_codes(by_id["MSR_msr_remi_test_1"]) == (
                [BLIND_ANSWERABLE] if mc["margin"] >= 0 else []
            )
            assert by_id["MSR_msr_remi_test_3"]["audit"] is None

        assert_that(flagged["records"], check)
        assert_that(out[DEAD], equal_to([]), label="NoDead")


# --- config and preflight ---------------------------------------------------------------------


def test_config_block_defaults_no_blind_and_the_rule_between_keys(tiny_lm):
    off = BlindConfig.from_block(None)
    assert not off.enabled and off.skip_reason and off.margin == 0.5
    on = BlindConfig.from_block({"enabled": True, "checkpoint": tiny_lm}, no_blind=True)
    assert not on.enabled and on.skip_reason == NO_BLIND_REASON
    with pytest.raises(PipelineConfigError, match=r"audit\.blind\.checkpoint"):
        BlindConfig.from_block({"enabled": True})
    text = SAMPLE_CONFIG.read_text()
    config = parse_config(text, str(SAMPLE_CONFIG), no_clip=True)
    assert config.blind.checkpoint == str(Path(tiny_lm))
    assert not parse_config(text, str(SAMPLE_CONFIG), no_clip=True, no_blind=True).blind.enabled


def _config(tmp_path: Path, blind_block: str) -> str:
    """configs/sample.yaml with its sources by absolute path, no CLIP and another audit block."""
    text = SAMPLE_CONFIG.read_text().replace("../sample/", f"{REPO}/sample/")
    head, _, _ = text.partition("\naudit:\n")  # the sources; audit and clip follow
    path = tmp_path / "blind.yaml"
    path.write_text(f"{head}\nclip:\n  enabled: false\naudit:\n  blind:\n{blind_block}")
    return str(path)


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ("    enabled: true\n    checkpoint: missing-lm\n", "does not exist"),
        ("    enabled: true\n    checkpoint: .\n", "lacks config.json"),
        ("    enabled: true\n    model: someone/some-lm\n", "HF_HUB_OFFLINE is set"),
    ],
    ids=["missing_folder", "not_a_model_folder", "hub_name_offline"],
)
def test_a_model_that_cannot_be_had_stops_the_build_with_one_message(tmp_path, capsys, block, says):
    config = _config(tmp_path, block)
    out = tmp_path / "build"
    assert main(["build", "--config", config, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mmloom build: error:")]
    assert len(lines) == 1, err
    assert says in err and "--no-blind" in err and "Traceback" not in err
    assert not out.exists()


def test_no_blind_skips_the_preflight(tmp_path):
    config = _config(tmp_path, "    enabled: true\n    checkpoint: missing-lm\n")
    from pipelines.config import load_config

    assert not load_config(config, no_blind=True).blind.enabled


def test_a_scored_text_longer_than_max_length_is_cut_not_refused(tiny_lm):
    handler = BlindLMHandler(replace(_spec(tiny_lm), max_length=16), max_batch_size=8)
    tok = load_tokenizer(handler.spec)
    item = encode(tok, "q" * 40, " " + "a" * 40, 16)
    out = next(iter(handler.run_inference([item._replace(ref="x")], handler.load_model())))
    assert out.example == ("x", True) and len(out.inference) == 8
