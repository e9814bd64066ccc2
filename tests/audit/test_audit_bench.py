"""bench/audit_throughput.py: argument handling, the ~1B configuration, and the refusal of
``--device cuda`` without a GPU (no GPU here: the 1b run itself is unmeasured)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.conftest import REPO
from tools.make_tiny_lm import lm_config


def _bench():
    spec = importlib.util.spec_from_file_location(
        "audit_throughput", REPO / "bench" / "audit_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("audit_throughput", module)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_arguments_parse():
    args = _bench().parse_args(["--device", "cuda", "--model-size", "1b", "--items", "2048"])
    assert (args.device, args.model_size, args.items) == ("cuda", "1b", 2048)
    defaults = _bench().parse_args([])
    assert (defaults.device, defaults.model_size, defaults.items) == ("cpu", "tiny", None)


@pytest.mark.parametrize(
    "argv",
    [["--model-size", "7b"], ["--device", "tpu"], ["--items", "0"], ["--max-length", "8"]],
)
def test_bad_arguments_are_refused_by_argparse(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _bench().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_1b_configuration_has_about_a_billion_parameters():
    from transformers import LlamaForCausalLM

    with torch.device("meta"):  # shapes only: no memory, no weights
        model = LlamaForCausalLM(lm_config("1b"))
    params = sum(p.numel() for p in model.parameters())
    assert 1.0e9 <= params <= 1.2e9, params


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_without_a_gpu_stops_with_one_message_before_making_a_model(capsys, monkeypatch):
    bench = _bench()
    made = []
    monkeypatch.setattr(bench, "model_folder", lambda *a: made.append(a) or "")
    assert bench.main(["--device", "cuda", "--model-size", "1b"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no CUDA device" in err and not made
