"""Fixtures for the CLIP tests: one tiny local checkpoint per session, record factories."""

from __future__ import annotations

import copy

import pytest

from pipelines.clip import ClipSettings
from pipelines.clip.tiny import TINY_MODEL_NAME
from pipelines.config import ClipConfig
from pipelines.images import load_images
from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from schemas.store import ImageStore
from tools.sample_images import make_image


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_clip_checkpoint) -> str:
    """The tiny model, constructed so crops and re-renders embed close (tools/make_tiny_clip);
    the same file the sample config uses (tests/conftest.py)."""
    return tiny_clip_checkpoint


@pytest.fixture
def image_store(tmp_path) -> ImageStore:
    """An empty image store, as a build folder has one (``<build>/images/``)."""
    return ImageStore(str(tmp_path / "build"))


@pytest.fixture
def clip_settings(tiny_checkpoint) -> ClipSettings:
    return ClipSettings.from_config(
        ClipConfig.from_block(
            {
                "model": TINY_MODEL_NAME,
                "pretrained": None,
                "checkpoint": tiny_checkpoint,
                "device": "auto",
                "max_batch_size": 4,
            }
        )
    )


def make_record(
    category: str = "SA",
    n: int = 2,
    seed: str = "r",
    images: list[bytes] | None = None,
    question_texts: list[str | None] | None = None,
    store: ImageStore | None = None,
) -> dict:
    """A finished record (images loaded; written into ``store`` when given) of ``category``
    with ``n`` image segments.

    SA/PBL: a prompt segment, then ``n`` (sentence, image) segments in the question.
    MSR/IF: one question text segment followed by ``n`` image-only segments.
    """
    refs = ImageRefs()
    datas = images or [make_image(f"{seed}-{i}") for i in range(n)]
    if category in ("SA", "PBL"):
        texts = question_texts or [f"sentence {i} of {seed}" for i in range(len(datas))]
        question = [seg("Continue the story.")] + [
            seg(t, refs.add(f"mem://{seed}/{i}.jpg", d))
            for i, (t, d) in enumerate(zip(texts, datas))
        ]
        field, subfield, src = "Literature", "Everyday Life", "vist"
        answer, gt_answer, value = [seg("And then they went home.")], None, None
    else:
        question = [seg(f"What is shown in the pictures of {seed}?")] + [
            seg(None, refs.add(f"mem://{seed}/{i}.jpg", d)) for i, d in enumerate(datas)
        ]
        field, subfield, src = "Mathematics", "Algebra", "remi"
        answer, gt_answer, value = [seg("42")], [seg("42")], "42"
    draft = new_record(
        record_id=make_id(category, src, "test", seed),
        category=category,
        field=field,
        subfield=subfield,
        question=question,
        answer=answer,
        gt_answer=gt_answer,
        images=refs,
        provenance=provenance(src, "test", seed, "cc-by", "test.json"),
        answer_value=value,
    )
    return copy.deepcopy(load_images(draft, store=store))
