"""Where each annotation round was pushed from, so that ``pull`` can print the second round's
push command complete and runnable as printed.

``push`` records, per Argilla URL, workspace and round name, the build folder and how images
were served (``--image-base``, or ``--image-root`` and ``--image-port``) in
``annotation-rounds.json`` beside the image-server registry (``~/.mmloom/``, or the folder of
``$MMLOOM_IMAGE_REGISTRY``). ``pull`` reads it back to print
``push --build BUILD --needs-edit OUT --dataset NEW ...`` with the same build and the same
image server, which keeps serving the first round's images while the second round's are added.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from annotation.images import DEFAULT_PORT, registry_path

FILE_NAME = "annotation-rounds.json"
MAX_ROUNDS = 500  # the oldest entries are dropped beyond this


def rounds_path() -> Path:
    """The rounds file, beside the image-server registry."""
    return registry_path().with_name(FILE_NAME)


def _key(url: str, workspace: str | None, dataset: str) -> str:
    return json.dumps([url.rstrip("/"), workspace or "", dataset])


def _read() -> dict[str, Any]:
    try:
        data = json.loads(rounds_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_round(url: str, workspace: str | None, dataset: str, info: dict[str, Any]) -> None:
    """Remember how the round ``dataset`` was pushed (``build``, ``image_base`` or
    ``image_root`` and ``image_port``); replaced atomically."""
    data = {k: v for k, v in _read().items() if k != _key(url, workspace, dataset)}
    data[_key(url, workspace, dataset)] = info
    data = dict(list(data.items())[-MAX_ROUNDS:])
    path = rounds_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def find_round(url: str, workspace: str | None, dataset: str) -> dict[str, Any] | None:
    """What :func:`record_round` kept for the round, or None."""
    info = _read().get(_key(url, workspace, dataset))
    return info if isinstance(info, dict) else None


def next_round_name(dataset: str) -> str:
    """``round1`` -> ``round1-r2``, ``round1-r2`` -> ``round1-r3``."""
    match = re.fullmatch(r"(.+)-r([0-9]+)", dataset)
    return f"{match.group(1)}-r{int(match.group(2)) + 1}" if match else f"{dataset}-r2"


def program() -> str:
    """How the user ran mmloom (``.venv/bin/mmloom``), else ``mmloom``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if os.path.basename(argv0) == "mmloom" else "mmloom"


def second_round_command(
    url: str, workspace: str | None, dataset: str, pull_dir: Path
) -> tuple[str, bool]:
    """The shell command that pushes a pull's needs_edit records to the next round, and
    whether it is complete (False: the round's build is unknown and shown as ``BUILD``)."""
    info = find_round(url, workspace, dataset) or {}
    build = info.get("build")
    words = [program(), "annotate", "push", "--build", build or "BUILD"]
    if workspace:
        words += ["--workspace", workspace]
    words += ["--needs-edit", str(pull_dir), "--dataset", next_round_name(dataset)]
    if info.get("image_base"):
        words += ["--image-base", info["image_base"]]
    elif info.get("image_root"):
        words += ["--image-root", info["image_root"]]
        if info.get("image_port") not in (None, DEFAULT_PORT):
            words += ["--image-port", str(info["image_port"])]
    quoted = " ".join(w if w == "BUILD" else shlex.quote(w) for w in words)
    return quoted, bool(build)
