"""What a command imports, pinned (bench/cli_latency.py --startup times it; no timing here).

Reading a local build (``mmloom show``, ``verify``) imports neither Beam nor torch: the build
is read with ``os`` and pyarrow (``schemas.filesystems``). Launching a CLIP build (its
preflight and the construction of its pipeline, everything before the pipeline starts)
imports no torch, open_clip or transformers: Beam's RunInference comes from
``pipelines.transforms.inference``, and the model is loaded in ``DoFn.setup()``.

Each check runs in a fresh interpreter (``sys.modules`` of the test process holds whatever
other tests imported).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipelines.tinybuild import write_tiny_build

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("apache_beam", "torch", "open_clip", "transformers")
MODEL_FRAMEWORKS = ("torch", "open_clip", "transformers")

# runs a statement, then prints which of the HEAVY modules it imported
PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _imported(body: str, *args: str) -> tuple[list[str], str]:
    """The HEAVY modules a fresh interpreter holds after running ``body`` (with ``args`` as
    ``sys.argv[1:]``), and what it wrote to stdout before them."""
    code = PROBE.format(body=body, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    *printed, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed)


READ_COMMANDS = [
    ["show", "{build}", "--summary"],
    ["show", "{build}", "--jsonl", "--limit", "2"],
    ["show", "{build}", "--dead-letters"],
    ["verify", "{build}", "--quick"],
    ["verify", "{build}"],
]


def test_reading_a_local_build_imports_no_beam_nor_torch(tmp_path):
    """Every command runs in one interpreter, one after the other; after each, the HEAVY
    modules imported so far are noted, so a failure names the first command that imported."""
    build = write_tiny_build(tmp_path / "build")
    commands = [[word.format(build=build) for word in c] for c in READ_COMMANDS]
    body = f"""
from pipelines.cli import main
after = []
for argv in {commands!r}:
    assert main(argv) == 0, argv
    after.append([" ".join(argv[:1] + argv[2:]), sorted(m for m in {HEAVY!r} if m in sys.modules)])
print(json.dumps(after))
"""
    imported, printed = _imported(body)
    after = json.loads(printed.splitlines()[-1])
    assert [c for c, _ in after] == [" ".join(c[:1] + c[2:]) for c in READ_COMMANDS]
    assert imported == [], f"imported after each command: {after}"


def test_the_probe_sees_beam_when_it_is_imported():
    """The check itself: a reader of a ``scheme://`` URI goes to Beam, and the probe sees it."""
    body = (
        "from schemas.filesystems import FileSystems\n"
        "try:\n    FileSystems.exists('nosuchscheme://bucket/build')\n"
        "except ValueError:\n    pass"
    )
    imported, _ = _imported(body)
    assert "apache_beam" in imported


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_launching_a_clip_build_imports_no_model_framework(tmp_path):
    """The CLIP preflight and the construction of the sample's whole pipeline (with
    ScoreImageText and its RunInference), everything ``mmloom build`` does before
    ``Pipeline.run()``, import no torch, open_clip or transformers."""
    checkpoint = tmp_path / "clip.safetensors"
    checkpoint.write_bytes(b"")  # the preflight looks for the file; nothing reads it here
    body = """
import dataclasses
import apache_beam as beam
from pipelines.build import build_pipeline
from pipelines.clip.settings import ClipSettings
from pipelines.config import load_config

config = load_config(sys.argv[1], no_clip=False)
clip = dataclasses.replace(config.clip, checkpoint=sys.argv[2])
config = dataclasses.replace(config, clip=clip)
assert config.clip.enabled
ClipSettings.from_config(config.clip).require_weights(config.path)
pipeline = beam.Pipeline()
build_pipeline(pipeline, config, sys.argv[3], progress_every=1.0)
labels = [t.full_label for t in pipeline.transforms_stack[0].parts]
assert "ScoreImageText" in labels, labels
print("constructed")
"""
    imported, printed = _imported(
        body, str(REPO / "configs" / "sample.yaml"), str(checkpoint), str(tmp_path / "out")
    )
    assert printed == "constructed"
    assert "apache_beam" in imported  # the probe sees what the build imports
    assert not set(imported) & set(MODEL_FRAMEWORKS), imported


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_run_inference_is_beams_and_its_fallbacks_are_restored():
    """``pipelines.transforms.inference`` re-exports Beam's own classes; after it, Beam's
    model manager can still be imported, and ``base.resource`` (memory counters) is set."""
    body = """
import resource
from pipelines.transforms import inference
from apache_beam.ml.inference import base
assert inference.RunInference is base.RunInference
assert inference.KeyedModelHandler is base.KeyedModelHandler
assert base.resource is resource
assert "torch" not in sys.modules
from apache_beam.ml.inference.model_manager import ModelManager
assert ModelManager.__name__ == "ModelManager"
"""
    imported, _ = _imported(body)
    assert "torch" in imported  # the model manager imports it, once asked for
