"""Install argilla-server 2.8 into its own virtual environment, once per machine.

argilla-server pins fastapi, pydantic and typer versions that conflict with the pipeline's
dependencies, so it lives in a separate venv (default ``~/.cache/mmloom/argilla-server-2.8``,
or ``$MMLOOM_ARGILLA_VENV``). typer 0.9, which argilla-server 2.8 uses for its CLI, breaks
with click 8.2+, hence the ``click<8.2`` pin. The install uses ``uv`` when the pipeline venv
has it (fast) and pip otherwise; a stamp file records what was installed, and a file lock
keeps two ``serve`` calls from installing at the same time.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

SERVER_REQUIREMENTS = ("argilla-server==2.8.*", "click<8.2")
STAMP_NAME = ".mmloom-installed"


class InstallError(RuntimeError):
    """argilla-server could not be installed; the message says what to try."""


def default_venv() -> Path:
    """Where the argilla-server venv lives: ``$MMLOOM_ARGILLA_VENV`` or the user cache."""
    env = os.environ.get("MMLOOM_ARGILLA_VENV")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mmloom" / "argilla-server-2.8"


def venv_python(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def _stamp_text() -> str:
    return "\n".join(SERVER_REQUIREMENTS) + "\n"


def is_installed(venv: Path) -> bool:
    """True when ``venv`` holds the pinned argilla-server."""
    stamp = venv / STAMP_NAME
    return venv_python(venv).exists() and stamp.exists() and stamp.read_text() == _stamp_text()


def _run(cmd: list[str], log) -> None:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-20:])
        raise InstallError(
            f"Installing argilla-server failed ({' '.join(cmd[:4])} ...):\n{tail}\n"
            "Check that the package index is reachable (pip config / UV_INDEX_URL), or install "
            "by hand: python3 -m venv VENV && VENV/bin/pip install "
            f"{' '.join(SERVER_REQUIREMENTS)!r} and point MMLOOM_ARGILLA_VENV at VENV."
        )
    log("ok")


def ensure_server_venv(venv: Path | None = None, log=print) -> Path:
    """Create ``venv`` with argilla-server 2.8 unless it is already there; return its Python.

    Args:
        venv: target folder (default :func:`default_venv`).
        log: callable for progress lines.

    Returns:
        Path of the venv's ``python``.

    Raises:
        InstallError: the venv or the packages could not be installed.
    """
    venv = Path(venv or default_venv())
    if is_installed(venv):
        return venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_installed(venv):
            return venv_python(venv)
        log(f"Installing {', '.join(SERVER_REQUIREMENTS)} into {venv} (first run only) ...")
        if not venv_python(venv).exists():
            _run([sys.executable, "-m", "venv", str(venv)], log)
        python = str(venv_python(venv))
        try:
            import uv  # noqa: F401

            cmd = [sys.executable, "-m", "uv", "pip", "install", "--python", python]
        except ImportError:
            cmd = [python, "-m", "pip", "install", "--quiet"]
        _run([*cmd, *SERVER_REQUIREMENTS], log)
        (venv / STAMP_NAME).write_text(_stamp_text())
    return venv_python(venv)
