"""Fixtures of the label-suspicion tests: the tiny local VLM folder, record factories."""

from __future__ import annotations

import copy

import pytest

from pipelines.images import load_images
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.store import ImageStore
from tools.sample_images import make_image


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> str:
    """A tiny random-weight LLaVA-shaped model folder (tools/make_tiny_vlm.py), made once."""
    from tools.make_tiny_vlm import make_tiny_vlm

    return str(make_tiny_vlm(tmp_path_factory.mktemp("vlm") / "mmloom-tiny-vlm"))


def mc_record(seed: str, gold: str = "A", n_options: int = 3, n_images: int = 2, store=None):
    """A finished multiple-choice MSR record with ``n_images`` images (in ``store`` if given)."""
    refs = ImageRefs()
    question = [seg(f"Which shape is shown in {seed}?")] + [
        seg(None, refs.add(f"mem://{seed}/{i}.jpg", make_image(f"{seed}-{i}")))
        for i in range(n_images)
    ]
    options = [{"label": chr(65 + i), "text": f"shape {i}"} for i in range(n_options)]
    draft = new_record(
        record_id=make_id("MSR", "mathvista", "test", seed),
        category="MSR",
        field="Mathematics",
        subfield="Geometry",
        question=question,
        answer=[seg(gold)],
        gt_answer=[seg(gold)],
        images=refs,
        provenance=provenance("mathvista", "test", seed, "cc-by-sa", "test.json"),
        question_format="multiple_choice",
        options=options,
        answer_type="text",
        answer_value=gold,
    )
    return copy.deepcopy(load_images(draft, store=store))


def open_record(seed: str, gold: str = "3", answer_type: str = "integer", store=None):
    """A finished open-ended MSR record with a typed gold answer and one image."""
    refs = ImageRefs()
    question = [
        seg(f"How many objects are in {seed}?", refs.add(f"mem://{seed}.jpg", make_image(seed)))
    ]
    draft = new_record(
        record_id=make_id("MSR", "mathvista", "test", seed),
        category="MSR",
        field="Mathematics",
        subfield="Arithmetic",
        question=question,
        answer=[seg(gold)],
        gt_answer=[seg(gold)],
        images=refs,
        provenance=provenance("mathvista", "test", seed, "cc-by-sa", "test.json"),
        answer_type=answer_type,
        answer_value=int(gold) if answer_type == "integer" else gold,
    )
    return copy.deepcopy(load_images(draft, store=store))


def story_record(seed: str, store=None):
    """A finished SA record: a continuation, no single gold label."""
    refs = ImageRefs()
    question = [seg("Continue the story.")] + [
        seg(f"sentence {i}", refs.add(f"mem://{seed}/{i}.jpg", make_image(f"{seed}-{i}")))
        for i in range(2)
    ]
    draft = new_record(
        record_id=make_id("SA", "vist", "test", seed),
        category="SA",
        field="Literature",
        subfield="Everyday Life",
        question=question,
        answer=[seg("And then they went home.")],
        images=refs,
        provenance=provenance("vist", "test", seed, "cc-by", "test.json"),
    )
    return copy.deepcopy(load_images(draft, store=store))


@pytest.fixture
def image_store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "build"))
