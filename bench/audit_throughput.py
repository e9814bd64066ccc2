"""Blind-answerability audit throughput: the stage's scoring path vs a bare forward pass.

    .venv/bin/python bench/audit_throughput.py                        # CPU, tiny LM, ~1 minute
    .venv/bin/python bench/audit_throughput.py --device cuda --model-size 1b --items 2048

Items are real-format records: the sample's MathVista problems (``sample/mathvista``, read
and restructured by the source's own parser; multiple-choice and open-ended), repeated to
``--items``. The model is the tiny random-weight LM of the sample config (``tiny``; made by
``tools/make_tiny_lm.py`` when missing) or a random-weight ~1.1B-parameter Llama (``1b``,
TinyLlama's shape; written to a temporary folder first). Weights do not change speed.

Two measurements in the same run, on the same device, alternated, best of ``--repeats``:

* **stage**: what ``ScoreBlindAnswerability`` does per item, minus Beam: the texts to score
  (``blind_item``), tokenizing (``encode``), ``BlindLMHandler.run_inference`` on batches of
  ``--max-batch-size`` texts (fixed-shape forward passes, per-token log-probabilities), and
  the scores (``blind_scores``);
* **baseline, forward only**: the bare model forward (``model(input_ids)``, logits only) on
  the same token batches, each batch padded to its own longest text, with no fixed shape, no
  log-softmax and no scores.

Printed: items/s of each and the ratio stage/baseline (the cost of the fixed shapes, the
log-probabilities and the bookkeeping), with device, threads and date. Beam's own overhead
(the join, serialisation between stages) is not included.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TINY_LM = REPO / "out" / "models" / "mmloom-tiny-lm"
MATHVISTA = REPO / "sample" / "mathvista"


class BenchError(Exception):
    """A bench that cannot run here (one message, exit 2)."""


def mathvista_items() -> list[dict[str, Any]]:
    """The sample's MathVista problems as draft records (the source's own parser)."""
    from pipelines.config import fill_block
    from sources.mathvista.parse import problem_to_item, restructure

    options = fill_block("mathvista", {"root": str(MATHVISTA), "splits": ["testmini"]}, "")
    raw = json.loads((MATHVISTA / "testmini.json").read_text(encoding="utf-8"))
    return [
        restructure(
            problem_to_item(
                problem,
                key=key,
                position=i,
                source_file="testmini.json",
                splits=("testmini",),
                query=None,
                image_root=options["root"],
            ),
            options,
        )
        for i, (key, problem) in enumerate(raw.items())
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--model-size", choices=["tiny", "1b"], default="tiny")
    parser.add_argument("--items", type=int, default=None, help="default 132 (CPU), 2048 (GPU)")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    for name in ("items", "max_batch_size", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 16 <= args.max_length <= 8192:
        parser.error("--max-length must be in 16..8192")
    return args


def resolve(args: argparse.Namespace) -> str:
    """The device to run on; refuses ``cuda`` without one (before any model is made)."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            "--device cuda: torch sees no CUDA device here; run on a GPU machine, or use "
            "--device cpu (the 1b model on a CPU takes minutes per batch)"
        )
    if args.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return args.device


def model_folder(size: str, scratch: str) -> str:
    from tools.make_tiny_lm import make_tiny_lm

    if size == "tiny":
        if not (TINY_LM / "config.json").is_file():
            make_tiny_lm(TINY_LM)
        return str(TINY_LM)
    return str(make_tiny_lm(Path(scratch) / "lm-1b", size="1b"))


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pipelines.audit.blind_handler import BlindLMHandler
    from pipelines.audit.blind_items import blind_item, blind_scores
    from pipelines.audit.blind_model import BlindSpec, encode, load_tokenizer

    device = resolve(args)
    n_items = args.items or (2048 if device == "cuda" else 132)
    base = mathvista_items()
    items = [base[i % len(base)] for i in range(n_items)]
    with tempfile.TemporaryDirectory(prefix="mmloom-bench-lm-") as scratch:
        folder = model_folder(args.model_size, scratch)
        spec = BlindSpec(folder, True, device, args.max_length)
        handler = BlindLMHandler(spec, max_batch_size=args.max_batch_size)
        model = handler.load_model()
        tok = load_tokenizer(spec)
        params = sum(p.numel() for p in model.model.parameters())

        def sync() -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        def stage() -> int:
            """The stage's path per item: texts, tokens, handler batches, scores."""
            pending: list[tuple[int, Any]] = []
            done = 0
            keyed = []
            for i, record in enumerate(items):
                item = blind_item(record)
                keyed.append(item)
                for c in item.continuations:
                    enc = encode(tok, c.context, c.continuation, spec.max_length)
                    pending.append((i, enc._replace(ref=c.ref)))
            results: dict[int, dict[str, tuple[np.ndarray, bool]]] = {}
            for start in range(0, len(pending), args.max_batch_size):
                part = pending[start : start + args.max_batch_size]
                out = handler.run_inference([e for _, e in part], model)
                for (i, _), r in zip(part, out):
                    results.setdefault(i, {})[r.example[0]] = (r.inference, r.example[1])
            for i, item in enumerate(keyed):
                blind_scores(item, results[i], spec.model_id)
                done += 1
            sync()
            return done

        batches: list[np.ndarray] = []
        texts = [
            encode(tok, c.context, c.continuation, spec.max_length).tokens
            for record in items
            for c in blind_item(record).continuations
        ]
        for start in range(0, len(texts), args.max_batch_size):
            part = texts[start : start + args.max_batch_size]
            ids = np.full((len(part), max(len(t) for t in part)), model.pad_id, dtype=np.int64)
            for r, t in enumerate(part):
                ids[r, : len(t)] = t
            batches.append(ids)

        def baseline() -> int:
            """The bare forward on the same token batches (own padding, logits only)."""
            with torch.inference_mode():
                for ids in batches:
                    model.model(input_ids=torch.from_numpy(ids).to(device), use_cache=False)
            sync()
            return len(items)

        stage()  # warm-up (kernels, allocator)
        baseline()
        best = {"stage": 0.0, "baseline": 0.0}
        for _ in range(args.repeats):
            for name, fn in (("stage", stage), ("baseline", baseline)):
                t = time.perf_counter()
                n = fn()
                best[name] = max(best[name], n / (time.perf_counter() - t))
    return {
        "device": device,
        "device_name": device_name(device),
        "dtype": str(model.dtype),
        "model_size": args.model_size,
        "parameters": params,
        "items": n_items,
        "texts": len(texts),
        "forward_rows": model.forward_rows,
        "threads": torch.get_num_threads(),
        "stage_items_s": best["stage"],
        "baseline_items_s": best["baseline"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        r = run(args)
    except BenchError as exc:
        print(f"audit_throughput: error: {exc}", file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(
        f"blind-answerability audit throughput, {datetime.date.today()}, "
        f"{r['device']} ({r['device_name']}, {r['threads']} threads, load "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}), {r['dtype']}"
    )
    print(
        f"model: {r['model_size']} ({r['parameters'] / 1e6:.2f}M parameters, random weights); "
        f"{r['items']} MathVista items, {r['texts']} scored texts; max batch "
        f"{args.max_batch_size}, {r['forward_rows']} rows per fixed-shape pass, max_length "
        f"{args.max_length}; best of {args.repeats}"
    )
    print(f"  stage (texts, tokens, handler, scores): {r['stage_items_s']:10.1f} items/s")
    print(f"  baseline (bare forward, same batches):   {r['baseline_items_s']:10.1f} items/s")
    ratio = r["stage_items_s"] / r["baseline_items_s"]
    print(f"  ratio stage/baseline:                    {ratio:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
