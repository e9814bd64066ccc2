"""Digests of a build and a release of the bundled sample: what "behaviour unchanged" means.

A refactor that keeps behaviour writes the same bytes: the same records, dead letters, images,
stats and release. This tool builds ``configs/sample.yaml`` (with the tiny local CLIP model),
publishes it, and prints (or writes) one sha256 per file. ``tests/test_sample_identity.py``
compares them with ``tests/testdata/sample_digests.json``; a change that is *meant* to change
what is written rewrites that file (``--write``) in the same commit, so the diff shows it.

Two things are normalised, because they name the machine, not the data: ``stats.json`` records
the config and source paths as resolved on this machine (rewritten relative to the checkout),
and ``_BUILD.json`` holds ``stats.json``'s checksum and size (recomputed from the normalised
file).

    python -m tools.sample_digest               # print the digests
    python -m tools.sample_digest --write       # rewrite tests/testdata/sample_digests.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = REPO / "configs" / "sample.yaml"
DIGESTS = REPO / "tests" / "testdata" / "sample_digests.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _relative_paths(value: Any, root: str) -> Any:
    """``value`` with every string that starts with ``root`` written relative to it."""
    if isinstance(value, dict):
        return {k: _relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, root) for v in value]
    if isinstance(value, str) and value.startswith(root):
        return "<repo>/" + os.path.relpath(value, root)
    return value


def _normalised_stats(path: Path) -> bytes:
    stats = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps(_relative_paths(stats, str(REPO)), sort_keys=True).encode()


def folder_digests(folder: Path, kind: str) -> dict[str, str]:
    """``{kind/relative path: sha256}`` for every file under ``folder``."""
    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if kind == "build" and rel == "stats.json":
            data = _normalised_stats(path)
        elif kind == "build" and rel == "_BUILD.json":
            manifest = json.loads(path.read_text(encoding="utf-8"))
            manifest.get("stats", {}).pop("sha256", None)
            manifest.get("stats", {}).pop("bytes", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        else:
            data = path.read_bytes()
        out[f"{kind}/{rel}"] = _sha256(data)
    return out


def sample_digests(workdir: Path, checkpoint: str | None = None) -> dict[str, str]:
    """Build and publish the sample under ``workdir``; the digests of both."""
    from pipelines.cli import main

    if checkpoint is None:
        from tools.make_tiny_clip import make_tiny_clip

        tiny = REPO / "out" / "models" / "mmloom-tiny-clip.safetensors"
        if not tiny.exists():
            tiny.parent.mkdir(parents=True, exist_ok=True)
            make_tiny_clip(tiny)
    build, release = workdir / "build", workdir / "release"
    if main(["build", "--config", str(SAMPLE_CONFIG), "--output", str(build)]) != 0:
        raise SystemExit("the sample build failed")
    if main(["publish", "--build", str(build), "--output", str(release), "--version", "1.0.0"]):
        raise SystemExit("publishing the sample failed")
    return {**folder_digests(build, "build"), **folder_digests(release, "release")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {DIGESTS}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        digests = sample_digests(Path(tmp))  # what build and publish print goes to stderr
    text = json.dumps(digests, indent=1, sort_keys=True) + "\n"
    if args.write:
        DIGESTS.write_text(text, encoding="utf-8")
        print(f"wrote {len(digests)} digests to {DIGESTS.relative_to(REPO)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
