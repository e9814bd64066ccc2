"""Shared fixtures: record factories and paths."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest

from schemas.records import ImageRefs, make_id, new_record, provenance, seg
from tools.sample_images import make_image

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = REPO / "configs" / "sample.yaml"
# headless Chromium as every browser test starts it (Debian's package; a fresh profile each)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# where configs/sample.yaml expects its tiny CLIP model (`make tiny-clip` makes the same file)
TINY_CLIP = REPO / "out" / "models" / "mmloom-tiny-clip.safetensors"
# where configs/sample.yaml expects its tiny blind-audit LM (`make tiny-lm` makes the same)
TINY_LM = REPO / "out" / "models" / "mmloom-tiny-lm"


@pytest.fixture(scope="session")
def tiny_clip_checkpoint() -> str:
    """The tiny local CLIP model of the sample config, made once (about half a minute)."""
    if not TINY_CLIP.exists():
        from tools.make_tiny_clip import make_tiny_clip

        TINY_CLIP.parent.mkdir(parents=True, exist_ok=True)
        make_tiny_clip(TINY_CLIP)
    return str(TINY_CLIP)


@pytest.fixture(scope="session", autouse=True)
def tiny_lm() -> str:
    """The tiny local language model folder of the sample config, made once (seconds) when
    missing: every test that loads configs/sample.yaml needs it there (its ``audit.blind``
    is on, and a missing checkpoint is a config error), as ``make tiny-lm`` leaves it."""
    if not (TINY_LM / "config.json").is_file():
        from tools.make_tiny_lm import make_tiny_lm

        make_tiny_lm(TINY_LM)
    return str(TINY_LM)


def make_draft(n_images: int = 1, image_bytes: bytes | None = None, **overrides) -> dict:
    """A valid draft MSR record with ``n_images`` embedded images; override any key."""
    refs = ImageRefs()
    segs = []
    for i in range(n_images):
        data = image_bytes if image_bytes is not None else make_image(f"draft-{i}")
        segs.append(seg(f"part {i}", refs.add(f"mem://draft/{i}.jpg", data)))
    draft = new_record(
        record_id=make_id("MSR", "remi", "test", 7),
        category="MSR",
        field="Mathematics",
        subfield="Algebra",
        question=segs,
        answer=[seg("42")],
        gt_answer=[seg("42")],
        images=refs,
        provenance=provenance("remi", "test", "7", "unclear (cc)", "test.parquet"),
        answer_value="42",
    )
    for key, value in overrides.items():
        draft[key] = value
    return copy.deepcopy(draft)


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory, tiny_clip_checkpoint, tiny_lm) -> Path:
    """One `mmloom build` of configs/sample.yaml per session, shared read-only by the
    end-to-end, publish and annotation tests (copy it before changing anything)."""
    from pipelines.cli import main

    out = tmp_path_factory.mktemp("sample-build") / "build"
    assert main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(out)]) == 0
    return out


@pytest.fixture
def draft_factory():
    return make_draft


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never reach a hub: make any accidental attempt fail loudly and fast."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    yield


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")


# The tiers (`make test-fast` leaves out slow, server and browser tests; `make test` runs all):
# a test is marked by what it uses, so a new test lands in the right tier by itself.
# a real Argilla (Redis + argilla-server); the loopback file and hub servers of tests/fetch
SERVER_FIXTURES = frozenset({"argilla_server", "files_server"})
# one full `mmloom build` of the sample; the tiny open_clip model (torch inference)
SLOW_FIXTURES = frozenset({"sample_build", "tiny_clip_checkpoint"})
# (the tiny LM is made in seconds and scores in milliseconds: its tests stay fast)


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # every fixture, requested or indirect
        if used & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if "chromium" in item.path.name:  # headless Chromium: tests/**/test_*_chromium.py
            item.add_marker(pytest.mark.browser)
