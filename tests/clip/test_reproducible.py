"""Reproducible CLIP scores: an embedding and a score do not depend on the batch they came in,
and two builds of the sample (in-process and with 2 processes) publish identical releases."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest

from pipelines.clip.model import (
    CPU_FORWARD_ROWS,
    IMAGE,
    TEXT,
    ClipInput,
    ImagePreprocessor,
    forward_rows,
    preprocess_config,
)
from pipelines.clip.pairs import text_ref
from pipelines.clip.score import clip_scores, cosine
from tests.clip.conftest import make_record
from tools.sample_images import make_image

# A batch as RunInference may form it: the image and text under test at some position, with
# other images and texts around them.
BATCH_SIZES = (1, 3, 8, 11)


@pytest.fixture(params=[4, 256], ids=["max_batch_4", "max_batch_256"])
def handler_and_model(request, clip_settings):
    handler = replace(clip_settings, max_batch_size=request.param).model_handler()
    return handler, handler.load_model()


def _inputs(spec, seeds: list[str]) -> list[ClipInput]:
    pre = ImagePreprocessor(preprocess_config(spec))
    tok = open_clip.get_tokenizer(spec.model)
    out = []
    for s in seeds:
        out.append(ClipInput(IMAGE, s, pre(make_image(s))))
        text = f"sentence {s}"
        out.append(ClipInput(TEXT, text_ref(text), tok([text])[0].numpy()))
    return out


def test_embedding_and_score_do_not_depend_on_batch_composition(handler_and_model):
    handler, model = handler_and_model
    spec = handler.spec
    target = _inputs(spec, ["target"])
    others = _inputs(spec, [f"other-{i}" for i in range(12)])
    record = make_record("SA", n=1, seed="t", question_texts=["sentence target"])
    record["images"][0]["sha256"] = "target"  # the ref the embedding is keyed by
    seen: list[tuple[np.ndarray, np.ndarray, dict]] = []
    for size in BATCH_SIZES:
        for pos in sorted({0, size // 2, size - 1}):
            for kinds in ("mixed", "images_then_texts"):
                rest = others[: 2 * (size - 1)]
                batch = [*rest[: 2 * pos], *target, *rest[2 * pos :]]
                if kinds == "images_then_texts":
                    batch = sorted(batch, key=lambda e: e.kind != IMAGE)
                results = {r.example: r.inference for r in handler.run_inference(batch, model)}
                img, txt = results[(IMAGE, "target")], results[(TEXT, target[1].ref)]
                scores = clip_scores(
                    record, {(IMAGE, "target"): img, (TEXT, target[1].ref): txt}, "m"
                )
                seen.append((img, txt, scores))
    first_img, first_txt, first_scores = seen[0]
    for img, txt, scores in seen[1:]:
        assert img.tobytes() == first_img.tobytes()
        assert txt.tobytes() == first_txt.tobytes()
        assert scores == first_scores


def test_every_forward_pass_has_one_shape(handler_and_model, monkeypatch):
    handler, model = handler_and_model
    rows = model.forward_rows
    assert rows == forward_rows(model.device, handler.batch_elements_kwargs()["max_batch_size"])
    shapes = []
    encode_image, encode_text = model.model.encode_image, model.model.encode_text

    def spy(fn):
        def wrapped(x, **kw):
            shapes.append(x.shape[0])
            return fn(x, **kw)

        return wrapped

    monkeypatch.setattr(model.model, "encode_image", spy(encode_image))
    monkeypatch.setattr(model.model, "encode_text", spy(encode_text))
    for size in BATCH_SIZES:
        handler.run_inference(_inputs(handler.spec, [f"s{i}" for i in range(size)]), model)
    assert shapes and set(shapes) == {rows}


def test_forward_rows_by_device():
    assert forward_rows("cpu") == CPU_FORWARD_ROWS
    assert forward_rows("cpu", 4) == 4
    assert forward_rows("cuda", 1024) == 64


def test_cosine_is_exact_and_order_free():
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal(768).astype(np.float32) for _ in range(2))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    exact = math.fsum(float(x) * float(y) for x, y in zip(a, b))
    assert cosine(a, b) == exact
    perm = rng.permutation(768)
    assert cosine(a[perm], b[perm]) == exact
    assert cosine(a, a) <= 1.0


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_in_process_and_two_process_builds_and_releases_are_byte_identical(sample_build, tmp_path):
    from pipelines.cli import main
    from tests.conftest import SAMPLE_CONFIG

    mp = tmp_path / "mp"
    args = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(mp)]
    args += ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    assert main(args) == 0
    # the builds themselves: records, dead letters, stats.json and _BUILD.json, byte for byte
    # (the writers shard and sort by key, not by bundle); the image stores hold the same files
    assert _tree_digest(mp) == _tree_digest(sample_build)
    releases = []
    for name, build in (("single", sample_build), ("mp", mp)):
        out = tmp_path / f"release-{name}"
        assert (
            main(["publish", "--build", str(build), "--output", str(out), "--version", "1.0.0"])
            == 0
        )
        releases.append(_tree_digest(out))
    single, multi = releases
    assert any(k.startswith("data/") and k.endswith(".parquet") for k in single)
    assert "manifest.json" in single
    # the whole release, data/*.parquet and manifest.json included, byte for byte (the
    # manifest holds no build path or time, so nothing is normalised)
    assert multi == single
