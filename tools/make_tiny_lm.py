"""Write a tiny random-weight causal language model (``mmloom-tiny-lm``) for tests and CPU runs.

    python -m tools.make_tiny_lm --output out/models/mmloom-tiny-lm
    python -m tools.make_tiny_lm --output /tmp/lm-1b --size 1b     # ~1.1B parameters (bench)

The folder is what ``transformers`` writes with ``save_pretrained`` (``config.json``,
``model.safetensors``, ``generation_config.json``, ``tokenizer.json``,
``tokenizer_config.json``) and is loaded by the blind-answerability stage exactly like a real
checkpoint folder: ``AutoModelForCausalLM.from_pretrained(folder)`` and
``AutoTokenizer.from_pretrained(folder)``, local files only.

* The model is a ``LlamaForCausalLM`` with seeded random weights (``--seed``): ``tiny`` is 2
  layers of width 64 (about 0.1M parameters); ``1b`` has TinyLlama-1.1B's shape (22 layers of
  width 2048, grouped-query attention, 32,000-token vocabulary) for throughput measurements.
* The tokenizer is byte-level, built here with the ``tokenizers`` library and nothing
  downloaded or trained: three special tokens (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2) and the 256
  bytes (GPT-2's byte-to-character alphabet), no merges, so every text encodes, one token per
  UTF-8 byte, the same on every machine. The ``1b`` model's larger vocabulary is only there for
  its shape (matrix sizes): ids above 258 never occur.

Scores of a random model mean nothing; the point is the real loading, batching and scoring
path. Deterministic for a given seed and torch build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TINY_LM_NAME = "mmloom-tiny-lm"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
BYTE_VOCAB = len(SPECIAL_TOKENS) + 256

# LlamaConfig keyword arguments per --size
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "vocab_size": BYTE_VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        # wider than Llama's 0.02, so that a random model's log-probabilities differ
        # visibly between texts (at 0.02 every token is close to uniform)
        "initializer_range": 0.2,
    },
    "1b": {  # TinyLlama-1.1B's shape
        "vocab_size": 32000,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "max_position_embeddings": 2048,
        "initializer_range": 0.02,
    },
}


def byte_tokenizer():
    """The byte-level tokenizer (a ``PreTrainedTokenizerFast``), built locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=SIZES["tiny"]["max_position_embeddings"],
    )


def lm_config(size: str = "tiny"):
    """The ``LlamaConfig`` of ``size`` (``tiny`` or ``1b``)."""
    from transformers import LlamaConfig

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    return LlamaConfig(
        **SIZES[size],
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )


def make_tiny_lm(output: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Create the model and tokenizer and save them into the folder ``output`` (written beside
    it first and renamed into place, so a half-written folder is never taken for a model).
    Returns the folder."""
    import torch
    from transformers import LlamaForCausalLM

    output = Path(output)
    if output.exists() and not (output / "config.json").is_file():
        raise SystemExit(f"{output} exists and is not a model folder: choose another --output")
    config = lm_config(size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        byte_tokenizer().save_pretrained(staging)
        staging.chmod(0o755)
        for f in staging.iterdir():
            f.chmod(0o644)
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="model folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    args = parser.parse_args(argv)
    path = make_tiny_lm(args.output, args.seed, args.size)
    print(f"wrote {path} ({args.size}, random weights; use audit.blind.checkpoint: {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
