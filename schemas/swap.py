"""Replace a local folder by another one without a moment where neither is in place.

Used by ``mmloom build`` (a finished staging folder replaces the previous build) and
``mmloom publish --force`` (a finished release replaces the previous one). On Linux the two
folders are exchanged atomically with ``renameat2(RENAME_EXCHANGE)``: a reader sees the old
folder or the new one, never neither. Where the kernel or the filesystem lacks it, two renames
are used (old aside, new into place); a process killed between them leaves the old folder
under its aside name, and :func:`restore_aside` (called at the start of the next build or
publish to the same place) puts it back.

Callers go through ``schemas.output`` (``finish_staging``, ``restore``), which checks first that
the folder replaced is mmloom's and holds the output's locks while swapping.

Bottom layer: imports nothing of the project. Local paths only (on object stores a rename is
a copy; see README.md, "Guarantees").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
from collections.abc import Callable

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = None


def _renameat2():
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    return getattr(_libc, "renameat2", None) if _libc else None


def exchange(a: str, b: str) -> bool:
    """Atomically swap the folders ``a`` and ``b`` (both must exist); False when the system
    cannot (then nothing changed)."""
    fn = _renameat2()
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a)


def aside_name(dest: str, token: str) -> str:
    """Where the old folder waits while it is being replaced: ``.<name>.replaced-<token>``."""
    parent, name = os.path.split(os.path.abspath(dest))
    return os.path.join(parent, f".{name}.replaced-{token}")


def replace_dir(new: str, dest: str, token: str) -> None:
    """Put the folder ``new`` at ``dest``, replacing what is there; the old folder is deleted
    only once ``new`` is in place.

    ``token`` names the aside folder (``.<name>.replaced-<token>``) of the two-rename fallback.
    """
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    if os.path.isdir(dest) and not os.listdir(dest):
        os.rmdir(dest)  # an empty folder holds nothing to keep
        os.rename(new, dest)
        return
    if exchange(new, dest):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now names the old folder
        return
    aside = aside_name(dest, token)
    os.rename(dest, aside)
    os.rename(new, dest)  # killed before this line: restore_aside() puts the old one back
    shutil.rmtree(aside, ignore_errors=True)


def restore_aside(dest: str, owned: Callable[[str], bool] | None = None) -> str | None:
    """After a crash between the two renames of :func:`replace_dir`: put the old folder back
    when ``dest`` is missing; delete aside folders when ``dest`` is there (with ``owned``, only
    those it recognises). Returns the folder restored, if any."""
    parent, name = os.path.split(os.path.abspath(dest))
    if not os.path.isdir(parent):
        return None
    pattern = re.compile(rf"^\.{re.escape(name)}\.replaced-")
    asides = sorted(os.path.join(parent, e) for e in os.listdir(parent) if pattern.match(e))
    restored = None
    for aside in asides:
        if restored is None and not os.path.lexists(dest):
            os.rename(aside, dest)
            restored = aside
        elif owned is None or owned(aside):
            shutil.rmtree(aside, ignore_errors=True)
    return restored
