"""The life of an output folder, for ``mmloom build`` and ``mmloom publish`` alike.

One place decides what mmloom may write, delete or replace:

* **Paths.** :func:`local_output` refuses an ``--output`` that is not UTF-8 or is a file, and
  follows a symlink: the build or release is written into the link's target (staging beside
  the target, the target swapped), and the link stays a link. :func:`refuse_overlap` refuses
  an output that is one of the run's inputs, lies inside one, or holds one.
* **Ownership.** mmloom replaces only folders it made and can recognise: a build (a valid
  ``_BUILD.json``), a release (:func:`is_release_folder`: a ``manifest.json`` with
  ``release_version``, ``mmloom_version`` and ``files``), or a folder that carries its marker
  :data:`MARKER` (``.mmloom-output``: JSON with kind, pid, process start time, host, token),
  written when mmloom creates a staging folder or starts a build in place. Anything else is
  refused, whatever ``--force``/``--overwrite`` say.
* **Locks.** :func:`writer_lock` takes an exclusive ``flock`` on ``.<name>.lock`` beside the
  output for the whole run: a second build or publish to the same output fails at once and
  names the process that holds it. Readers of a build (``publish``, ``annotate push``) hold a
  shared lock on ``.<name>.readers.lock`` (:func:`reader_lock`) while they read it; a swap
  takes that one exclusively (:func:`swap_lock`, waiting for readers), so a reader sees one
  build from start to end. Lock files live in the parent folder, so they survive the swap. A
  holder deletes a lock file when it is the only one holding it (every locker checks, once it
  holds the lock, that the file it locked is still the one at that path); a killed process
  leaves its lock file behind, which is harmless and reused. The locks are advisory (only
  mmloom honours them), local (object stores such as ``gs://`` have none: two runs there are
  not kept apart) and as good as the filesystem's ``flock`` (NFS: see flock(2)).
* **Staging.** :func:`make_staging` creates ``.<name>.<kind>-<pid>-<token>`` beside the output,
  with the marker inside; :func:`finish_staging` drops the marker and swaps the folder into
  place (``schemas.swap``); :func:`clean_stale` removes staging folders of runs that died.
* **Liveness.** :func:`alive` says whether a process still runs, comparing the start time
  recorded with it (``/proc/<pid>/stat``), so a reused pid is not taken for the dead process.

Bottom layer: imports only ``schemas``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from schemas.errors import PipelineConfigError
from schemas.procs import alive, process_start
from schemas.swap import replace_dir, restore_aside

LOG = logging.getLogger("mmloom.output")

MARKER = ".mmloom-output"
MARKER_FORMAT = "mmloom-output"
BUILD, RELEASE = "build", "release"
STAGING_KIND = {BUILD: "building", RELEASE: "publish"}
RELEASE_MANIFEST = "manifest.json"
RELEASE_KEYS = ("release_version", "mmloom_version", "files")
WRITER_LOCK = ".{name}.lock"
READER_LOCK = ".{name}.readers.lock"


class OutputError(PipelineConfigError):
    """An output mmloom must not write, delete or replace; the message says what to do."""


# ------------------------------------------------------------------------------ processes


def command_of(pid: int) -> str:
    """The command line of process ``pid``, shortened, or ``?`` when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = [p.decode("utf-8", "replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return "?"
    text = " ".join(parts) or "?"
    return text if len(text) <= 200 else text[:197] + "..."


def this_process(kind: str) -> dict[str, Any]:
    """What a marker or a lock file records about the running process."""
    pid = os.getpid()
    return {
        "format": MARKER_FORMAT,
        "kind": kind,
        "pid": pid,
        "start": process_start(pid),
        "host": socket.gethostname(),
        "command": command_of(pid),
        "created": round(time.time(), 3),
    }


def _recorded_alive(info: dict[str, Any] | None) -> bool:
    if not info or not isinstance(info.get("pid"), int):
        return False
    start = info.get("start") if isinstance(info.get("start"), int) else None
    host = info.get("host") if isinstance(info.get("host"), str) else None
    return alive(info["pid"], start, host)


# ------------------------------------------------------------------------------ paths


def is_local(path: str) -> bool:
    return "://" not in path


def shown(path: str) -> str:
    """``path`` as it can be printed whatever its bytes (undecodable bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if is_local(path) else path


def local_output(output: str, flag: str = "--output") -> str:
    """The folder a local ``output`` names: absolute, a symlink followed to its target.

    Raises:
        OutputError: ``output`` is not UTF-8, or is an existing file.
    """
    try:
        output.encode("utf-8")
    except UnicodeEncodeError:
        raise OutputError(
            f"{flag} {shown(output)} is not valid UTF-8 (a name with undecodable bytes would "
            "break the files that record it); choose a UTF-8 name"
        ) from None
    real = os.path.realpath(os.path.abspath(output))
    if os.path.islink(output):
        LOG.info("%s %s is a symlink: writing into its target %s", flag, output, real)
    if os.path.exists(real) and not os.path.isdir(real):
        raise OutputError(
            f"{flag} {output} is an existing file; an output is a folder: choose a folder that "
            "does not exist yet (or an empty one)"
        )
    return real


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_overlap(
    output: str, inputs: Iterable[tuple[str, str]], flag: str = "--output", within: bool = False
) -> None:
    """Refuse an ``output`` that is one of ``inputs`` (what, path) or holds one of them; with
    ``within``, also one that lies inside an input folder. Object-store paths are skipped.

    Raises:
        OutputError: naming the input.
    """
    out = os.path.realpath(output)
    for what, path in inputs:
        if not path or not is_local(path):
            continue
        real = os.path.realpath(path)
        if out == real:
            where = "is"
        elif _inside(real, out):
            where = "holds"
        elif within and _inside(out, real):
            where = "is inside"
        else:
            continue
        raise OutputError(
            f"{flag} {output} {where} {what} {path}, which this run reads; writing there would "
            f"replace or mix with its own input: choose an {flag} outside it"
        )


# ------------------------------------------------------------------------------ ownership


def read_marker(folder: str) -> dict[str, Any] | None:
    """The marker mmloom left in ``folder`` (a local path), or None."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == MARKER_FORMAT else None


def has_marker(folder: str) -> bool:
    """Does ``folder`` (local or an object-store prefix) carry mmloom's marker?"""
    if is_local(folder):
        return read_marker(folder) is not None
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.exists(FileSystems.join(folder, MARKER))
    except Exception:
        return False


def write_marker(folder: str, kind: str) -> None:
    """Mark ``folder`` (local or object store) as being written by this process."""
    data = (json.dumps(this_process(kind), sort_keys=True) + "\n").encode("utf-8")
    if is_local(folder):
        with open(os.path.join(folder, MARKER), "wb") as f:
            f.write(data)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(FileSystems.join(folder, MARKER), compression_type="uncompressed") as f:
        f.write(data)


def read_release_manifest(folder: str) -> dict[str, Any] | None:
    """The ``manifest.json`` of a folder written by ``mmloom publish``, or None when the folder
    holds none, or one that is not a mmloom release manifest."""
    try:
        with open(os.path.join(folder, RELEASE_MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not all(k in manifest for k in RELEASE_KEYS):
        return None
    return manifest if isinstance(manifest["files"], dict) else None


def is_release_folder(folder: str) -> bool:
    return read_release_manifest(folder) is not None


def is_build_folder(folder: str) -> bool:
    """Does ``folder`` hold a ``_BUILD.json`` that is a mmloom build manifest (the files may
    still differ from it: a damaged build is still mmloom's)?"""
    from schemas.buildio import IncompleteBuildError, read_manifest

    try:
        return read_manifest(folder) is not None
    except (IncompleteBuildError, OSError):
        return False


def _recognised(folder: str) -> bool:
    return is_build_folder(folder) or is_release_folder(folder)


def entries(folder: str) -> list[str]:
    """The names in a local folder (none when it does not exist)."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def listing(names: Iterable[str]) -> str:
    """A short list of ``names`` for a message."""
    names = list(names)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


# ------------------------------------------------------------------------------ locks


def lock_path(output: str, readers: bool = False) -> str:
    parent, name = os.path.split(os.path.abspath(output))
    return os.path.join(parent, (READER_LOCK if readers else WRITER_LOCK).format(name=name))


def holders(path: str, fd: int | None = None) -> list[str]:
    """The processes holding a ``flock`` on the file at ``path``, as ``pid N (command)``:
    from ``/proc/locks``, else from what the exclusive holder wrote into the file."""
    try:
        st = os.fstat(fd) if fd is not None else os.stat(path)
    except OSError:
        return []
    found: list[int] = []
    on_dev: list[int] = []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue  # "->" lines are waiters, not holders
        try:
            inode = int(parts[5].rsplit(":", 1)[-1])
            pid = int(parts[4])
        except ValueError:
            continue
        if inode == st.st_ino and pid not in found:
            found.append(pid)
            if parts[5].startswith(dev):
                on_dev.append(pid)
    found = on_dev or found  # an overlay filesystem may report another device
    if not found:
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
            if _recorded_alive(info):
                return [f"pid {info['pid']} ({info.get('command', '?')})"]
        except (OSError, ValueError, AttributeError):
            pass
    return [f"pid {pid} ({command_of(pid)})" for pid in found]


def _open_lock(path: str, create: bool = True) -> int:
    flags = os.O_RDWR | (os.O_CREAT if create else 0) | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM) and os.path.exists(path):
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        raise


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _acquire(path: str, mode: int, on_busy) -> int:
    """Open and ``flock`` the lock file at ``path``; ``on_busy(fd)`` is called once when the
    lock is held by another process (it may raise, or return to wait for it). Retries when
    the file was deleted by its previous holder after we opened it."""
    told = False
    while True:
        fd = _open_lock(path)
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told:
                    told = True
                    on_busy(fd)
                fcntl.flock(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # its holder deleted it after we opened it: lock the file there now


def _release(fd: int, path: str) -> None:
    """Unlock; delete the lock file first when no one else holds or waits on it."""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        if _same_file(fd, path):
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


def _record(fd: int, info: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)


@contextlib.contextmanager
def writer_lock(output: str, kind: str, flag: str = "--output") -> Iterator[None]:
    """Hold the exclusive lock of a local ``output`` for a whole build or publish.

    Creates the output's parent folder if needed: a parent that cannot be written is refused
    here, before any work.

    Raises:
        OutputError: another process writes ``output`` (it is named), or its parent folder
            cannot be written.
    """
    parent = os.path.dirname(os.path.abspath(output))
    path = lock_path(output)
    try:
        os.makedirs(parent, exist_ok=True)
        os.close(_open_lock(path))
    except OSError as exc:
        raise OutputError(
            f"cannot write {flag} {output}: nothing can be created in {parent} "
            f"({exc.strerror}); choose an {flag} in a folder you can write to"
        ) from None

    def busy(fd: int) -> None:
        who = ", ".join(holders(path, fd)) or "another process"
        raise OutputError(
            f"{flag} {output} is being written right now by {who}; wait for it to finish "
            f"or choose another {flag}"
        )

    fd = _acquire(path, fcntl.LOCK_EX, busy)
    _record(fd, this_process(kind))
    try:
        yield
    finally:
        _release(fd, path)


@contextlib.contextmanager
def reader_lock(folder: str) -> Iterator[None]:
    """Hold a shared lock on a local build (or release) while reading it, so that no swap
    replaces it meanwhile. Waits while a swap is under way. Where the lock file cannot be
    created (a read-only parent, where no one can swap the folder either) and for object
    stores, nothing is locked."""
    folder = os.fspath(folder)
    if not is_local(folder):
        yield
        return
    real = os.path.realpath(folder)
    path = lock_path(real, readers=True)
    if not os.path.isdir(os.path.dirname(path)):
        yield
        return

    def busy(fd: int) -> None:
        who = ", ".join(holders(path, fd)) or "another process"
        LOG.info("waiting for %s, which is replacing %s, before reading it", who, folder)

    try:
        fd = _acquire(path, fcntl.LOCK_SH, busy)
    except OSError as exc:
        LOG.debug("reading %s without a lock: %s", folder, exc)
        yield
        return
    try:
        yield
    finally:
        _release(fd, path)


@contextlib.contextmanager
def swap_lock(output: str) -> Iterator[None]:
    """Hold the readers' lock of ``output`` exclusively while it is swapped: waits until the
    processes reading it (named in the log) are done."""
    path = lock_path(output, readers=True)

    def busy(fd: int) -> None:
        who = ", ".join(holders(path, fd)) or "another process"
        LOG.info("waiting for %s to finish reading %s before replacing it", who, output)

    fd = _acquire(path, fcntl.LOCK_EX, busy)
    _record(fd, this_process("swap"))
    try:
        yield
    finally:
        _release(fd, path)


# ------------------------------------------------------------------------------ staging


def staging_prefix(output: str, kind: str) -> tuple[str, str]:
    parent, name = os.path.split(os.path.abspath(output))
    return parent, f".{name}.{STAGING_KIND[kind]}-"


def make_staging(output: str, kind: str, flag: str = "--output") -> str:
    """Create the staging folder of ``output`` (beside it), marked as this process's.

    Raises:
        OutputError: the folder cannot be created (no space, no permission).
    """
    parent, prefix = staging_prefix(output, kind)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
    except OSError as exc:
        raise OutputError(
            f"cannot write {flag} {output} in {parent} ({exc.strerror}); choose an {flag} in a "
            "folder you can write to, with free space"
        ) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
        write_marker(staging, kind)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(
            f"cannot write {flag} {output} in {parent} ({exc.strerror}); free some space or "
            f"choose an {flag} elsewhere"
        ) from None
    return staging


def finish_staging(staging: str, output: str) -> None:
    """Put a complete staging folder at ``output``: its marker is dropped (what it holds is
    recognised by its own manifest now), and it replaces what is there once no one reads it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(staging, MARKER))
    with swap_lock(output):
        replace_dir(staging, output, os.path.basename(staging).rsplit("-", 1)[-1])


def discard_staging(staging: str) -> None:
    """Delete this process's staging folder (a run that failed)."""
    marker = read_marker(staging)
    if marker is None or marker.get("pid") == os.getpid():
        shutil.rmtree(staging, ignore_errors=True)


def restore(output: str) -> None:
    """Put back a previous build or release that a crash left aside mid-swap."""
    if restore_aside(output, owned=lambda aside: _recognised(aside) or has_marker(aside)):
        LOG.info("restored %s, left aside by a run that was interrupted while replacing it", output)


def clean_stale(output: str) -> None:
    """Remove staging folders (and leftover staging symlinks) of runs to ``output`` whose
    process is gone. Call it holding :func:`writer_lock`: then no other run writes them.

    A staging folder is removed only when mmloom recognises it: its marker names a process
    that is gone, or it holds a finished build or release (its marker was dropped just before
    a swap that did not happen). Anything else with a staging name is left, with a warning.
    """
    parent, name = os.path.split(os.path.abspath(output))
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:{'|'.join(STAGING_KIND.values())})-(\d+)-")
    for entry in entries(parent):
        m = pattern.match(entry)
        if not m:
            continue
        path = os.path.join(parent, entry)
        if os.path.islink(path):  # left by mmloom before 2026-12: only the link goes
            if int(m.group(1)) != os.getpid() and not alive(int(m.group(1))):
                LOG.info("removing the symlink %s left by an interrupted run", entry)
                os.unlink(path)
            continue
        if not os.path.isdir(path):
            continue
        marker = read_marker(path)
        stale = not _recorded_alive(marker) if marker is not None else _recognised(path)
        if stale:
            LOG.info("removing %s, left by a run that did not finish", entry)
            shutil.rmtree(path, ignore_errors=True)
        elif marker is None:
            LOG.warning(
                "%s looks like a staging folder but carries no mark of mmloom; left as it is "
                "(delete it yourself if it is an old leftover)",
                path,
            )
