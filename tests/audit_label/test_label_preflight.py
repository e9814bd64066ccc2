"""The label-suspicion preflight: a build whose configured model folder is missing, or whose
handler lacks what it needs, stops before any pipeline starts with one message (exit 2)."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from pipelines.config import LabelAuditConfig
from schemas.errors import PipelineConfigError
from tests.conftest import REPO, SAMPLE_CONFIG


def label_config(tmp_path, label_block: str) -> str:
    """configs/sample.yaml with its sources by absolute path, no CLIP, and an audit block."""
    text = SAMPLE_CONFIG.read_text().replace("../sample/", f"{REPO}/sample/")
    head, _, _ = text.partition("\naudit:\n")  # the sources; audit and clip follow
    path = tmp_path / "label.yaml"
    path.write_text(f"{head}\nclip:\n  enabled: false\naudit:\n  label:\n{label_block}")
    return str(path)


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mmloom build: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_missing_model_folder_is_one_message_and_exit_2(tmp_path, capsys):
    config = label_config(tmp_path, "    enabled: true\n    model_dir: models/no-such-vlm\n")
    out = tmp_path / "build"
    assert main(["build", "--config", config, "--output", str(out)]) == 2
    line = _one_error(capsys)
    assert f"audit.label.model_dir {tmp_path}/models/no-such-vlm does not exist" in line
    assert "make tiny-vlm" in line and "audit.label.enabled: false" in line
    assert not out.exists(), "nothing was built"


def test_a_folder_that_is_not_a_model_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    config = label_config(tmp_path, "    enabled: true\n    model_dir: empty\n")
    assert main(["build", "--config", config, "--output", str(tmp_path / "b")]) == 2
    assert "is not a model folder" in _one_error(capsys)


def test_an_openai_handler_needs_a_server_and_a_model(tmp_path, capsys):
    config = label_config(tmp_path, "    enabled: true\n    handler: openai\n")
    assert main(["build", "--config", config, "--output", str(tmp_path / "b")]) == 2
    assert "audit.label.base_url or audit.label.served_model is not set" in _one_error(capsys)


def test_off_by_default_and_a_missing_folder_does_not_matter_when_off():
    assert LabelAuditConfig.from_block(None).enabled is False
    off = LabelAuditConfig.from_block({"enabled": False, "model_dir": "/no/such/folder"})
    assert off.model_dir == "/no/such/folder"
    with pytest.raises(PipelineConfigError, match="min_batch_size"):
        LabelAuditConfig.from_block({"min_batch_size": 9, "max_batch_size": 8})
