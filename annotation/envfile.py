"""``<home>/argilla.env``: where a shell finds the local Argilla (``source <file>``).

``mmloom annotate serve`` writes it (mode 0600) whenever it knows the owner's API key, so the
key travels through a file only its owner can read and never through a log or a terminal.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

ENV_URL = "ARGILLA_API_URL"
ENV_KEY = "ARGILLA_API_KEY"
ENV_FILE = "argilla.env"


def write_env_file(path: str | os.PathLike, url: str, api_key: str) -> Path:
    """Write ``export ARGILLA_API_URL=...`` and ``export ARGILLA_API_KEY=...`` to ``path``
    (mode 0600 from creation on, replaced atomically); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"export {ENV_URL}={shlex.quote(url)}\nexport {ENV_KEY}={shlex.quote(api_key)}\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
