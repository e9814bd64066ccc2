"""The CLIP weights preflight: a build whose weights are neither on this machine nor
downloadable stops before any pipeline starts, with one message (exit 2); nothing is loaded or
downloaded (HF_HUB_OFFLINE is set for every test: tests/conftest.py)."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from pipelines.cli import main
from pipelines.clip import ClipSettings
from pipelines.clip.model import HF_SAFE_WEIGHTS, ClipSpec, find_weights, require_weights
from pipelines.config import ClipConfig
from schemas.errors import PipelineConfigError
from tests.conftest import REPO, SAMPLE_CONFIG

# ViT-B-32/openai: open_clip's hub repository for it and the file it reads first
B32_REPO = "timm/vit_base_patch32_clip_224.openai"
B32 = ClipSpec("ViT-B-32", "openai", None, "cpu", "fp32")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache as the process's default (what HF_HOME would give)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_file(cache, repo: str, name: str) -> str:
    """Lay ``name`` of ``repo`` out in ``cache`` as huggingface_hub does (refs + snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / name).write_bytes(b"not weights: the preflight never reads them")
    return str(snap / name)


def tag_config(tmp_path, clip_block: str) -> str:
    """configs/sample.yaml with its sources by absolute path and another clip block."""
    text = (
        SAMPLE_CONFIG.read_text()
        .replace("../sample/", f"{REPO}/sample/")
        .replace("../out/", f"{REPO}/out/")
    )
    head, _, _ = text.partition("\nclip:\n")
    path = tmp_path / "tag.yaml"
    path.write_text(f"{head}\nclip:\n{clip_block}")
    return str(path)


def test_a_pretrained_tag_not_cached_is_refused_before_the_pipeline(
    tmp_path, capsys, empty_hub_cache
):
    config = tag_config(tmp_path, "  model: ViT-B-32\n  pretrained: openai\n")
    out = tmp_path / "build"
    assert main(["build", "--config", config, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mmloom build: error:")]
    assert len(lines) == 1, err
    message = lines[0]
    assert "ViT-B-32 with clip.pretrained 'openai'" in message
    assert f"set clip.checkpoint in {config}" in message
    assert "--no-clip" in message and "HF_HUB_OFFLINE is set" in message
    assert "Traceback" not in err
    assert not out.exists()  # refused before the output was prepared


def test_a_cached_pretrained_tag_passes_without_reading_the_weights(empty_hub_cache):
    cached = cache_file(empty_hub_cache, B32_REPO, HF_SAFE_WEIGHTS)
    found = find_weights(B32)
    assert found.path == cached and found.remote is None
    require_weights(B32, "c.yaml")  # no error: the bytes are not weights, and are not read


def test_the_pytorch_file_is_found_when_the_safetensors_one_is_not_cached(empty_hub_cache):
    cached = cache_file(empty_hub_cache, B32_REPO, "open_clip_pytorch_model.bin")
    assert find_weights(B32).path == cached


def test_an_empty_cache_names_what_open_clip_would_download(empty_hub_cache):
    found = find_weights(B32)
    assert found.path is None
    assert found.remote == f"hf://{B32_REPO}/{HF_SAFE_WEIGHTS}"


def test_the_sample_tiny_checkpoint_passes(clip_settings, tiny_checkpoint, empty_hub_cache):
    assert find_weights(clip_settings.spec).path == tiny_checkpoint
    clip_settings.require_weights("configs/sample.yaml")


def test_an_unknown_tag_is_one_message_with_the_known_tags(empty_hub_cache):
    with pytest.raises(PipelineConfigError, match="not an open_clip pretrained tag") as exc:
        require_weights(ClipSpec("ViT-B-32", "no-such-tag", None, "cpu", "fp32"), "c.yaml")
    assert "openai" in str(exc.value) and "clip.checkpoint" in str(exc.value)


def test_no_clip_checks_nothing(empty_hub_cache):
    block = {"model": "ViT-B-32", "pretrained": "openai"}
    ClipSettings.from_config(ClipConfig.from_block(block, no_clip=True)).require_weights("c.yaml")
    with pytest.raises(PipelineConfigError, match="--no-clip"):
        ClipSettings.from_config(ClipConfig.from_block(block)).require_weights("c.yaml")
