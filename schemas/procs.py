"""Process liveness: the one place mmloom asks whether a process it recorded still runs.

Used by output locks (``schemas.output``), the image server (``annotation.images``) and the
local Argilla (``annotation.server.runtime``). Standard library only, so that a light process
(the image server) can import it.
"""

from __future__ import annotations

import os
import socket


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, ``/proc/<pid>/stat`` field 22),
    or None when it is gone or the system has no ``/proc``."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses


def alive(pid: int, start: int | None = None, host: str | None = None) -> bool:
    """Is process ``pid`` (started at ``start``, on ``host``) still running?

    A pid whose start time differs from ``start`` belongs to another process now: the one
    recorded is gone. A zombie is gone. A process on another host cannot be asked: it counts
    as alive, so nothing of it is deleted.
    """
    if host is not None and host != socket.gethostname():
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return not os.path.isdir("/proc/self")  # no /proc to ask: trust the signal
    if fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start
