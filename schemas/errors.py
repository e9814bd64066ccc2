"""mmloom's small exception hierarchy; messages say what to do next.

Two kinds of failure never mix: an input fault (a bad item, a missing or undecodable image)
is a :class:`RecordError` that becomes a dead letter; an environment fault (a full disk, an
I/O error, an unwritable output) is an :class:`EnvironmentFault` that stops the run with no
manifest. :func:`classify_os_error` draws the line for OSErrors.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager


class MmloomError(Exception):
    """Base class."""


class PipelineConfigError(MmloomError):
    """A bad config or missing input, raised before the pipeline starts."""


class RecordError(MmloomError):
    """One input item cannot become a record. Never escapes a stage: it becomes a dead letter.

    Readers also *yield* RecordErrors (see ``sources.base.SourceReader.iter_units``): the
    error then names the rejected unit in ``source_id``.

    Args:
        reason: a stable snake_case reason, counted in stats.json (e.g. ``image_missing``).
        detail: a human-readable explanation naming the file, position or key involved.
        source_id: the rejected unit's id in its source, when the raiser knows it (None:
            the stage that catches the error names the unit).
    """

    def __init__(self, reason: str, detail: str = "", source_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.source_id = source_id


def as_record_error(exc: BaseException, source_id: str | None = None) -> RecordError:
    """``exc`` as a RecordError for unit ``source_id``: a RecordError keeps its reason and
    detail (and its own ``source_id`` when it has one); anything else is ``unexpected_error``
    with the exception type, so a bug shows up in stats instead of crashing the run."""
    if isinstance(exc, RecordError):
        sid = exc.source_id if exc.source_id is not None else source_id
        return RecordError(exc.reason, exc.detail, sid)
    if isinstance(exc, OSError) and exc.filename is not None:  # no machine path in the detail
        name = relative_to_build(str(exc.filename), "")
        return RecordError(
            "unexpected_error", f"{type(exc).__name__}: {exc.strerror} ({name})", source_id
        )
    return RecordError("unexpected_error", f"{type(exc).__name__}: {exc}", source_id)


# ----------------------------------------------------------------------------- environment

WRITING = "writing"
READING = "reading"

# Errors that describe the machine, whatever file was involved: the same read or write can
# succeed on another day, so no record may be dropped for them.
MACHINE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC", "EDQUOT", "EIO", "EROFS", "EFBIG", "ENOMEM", "EMFILE", "ENFILE", "ESTALE",
        "ENOTCONN", "ETIMEDOUT", "ENODEV", "EREMOTEIO", "ENOLINK",
    )
    if hasattr(errno, name)
)  # fmt: skip
# Permission errors are the machine's when mmloom writes its own build, but a property of the
# data as given (the same on every run) when a source file is read.
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

# errno -> (what happened, what to do)
_EXPLAIN = {
    errno.ENOSPC: ("the disk is full", "free space and run the build again"),
    errno.EIO: ("the disk reported an I/O error", "check the disk (dmesg) and run the build again"),
    errno.EROFS: ("the file system is read-only", "choose an --output on a writable file system"),
    errno.EACCES: ("permission denied", "make the folder writable by this user or choose another"),
    errno.EPERM: ("operation not permitted", "make the folder writable by this user or choose "
                  "another"),
    errno.EFBIG: ("the file is too large for the file system", "choose an --output on another "
                  "file system"),
    errno.ENOMEM: ("the machine ran out of memory", "free memory or run fewer workers, then run "
                   "the build again"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n) and run again"),
    errno.ENFILE: ("too many open files on the system", "close other programs and run again"),
}  # fmt: skip
if hasattr(errno, "EDQUOT"):
    _EXPLAIN[errno.EDQUOT] = ("the disk quota is used up", "free space or raise the quota, then "
                              "run the build again")  # fmt: skip

# how a fault reads in a worker process's traceback, which Beam passes on as text
# (a traceback's last line: ``schemas.errors.EnvironmentFault: <message>``, at a line's start)
_FAULT_TEXT = re.compile(r"^(?:[\w.]+\.)?EnvironmentFault: ([^\n]+)$", re.MULTILINE)
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] [^\n]*?(?:: '([^'\n]*)')?$", re.MULTILINE)
_ERRNO_NAME = re.compile(r"\((E[A-Z0-9]+)\)")
# Beam appends the step to a DoFn's exception message, once per re-raise
_STEP = re.compile(r"(?: \[while running '[^']*'\])+\s*$")


class EnvironmentFault(MmloomError):
    """The machine failed the run, not the input: a full disk, an I/O error, a read-only or
    unwritable output. It stops the build (no manifest is written) and never becomes a dead
    letter; :func:`classify_os_error` draws the line.

    Args:
        message: the whole message for the user (:meth:`from_os_error` writes it).
        errno: the operating system's error number, when known.
        operation: ``writing`` or ``reading`` (or what else was being done).
        path: the file involved, relative to the build folder (or to its source folder for a
            source file); never an absolute machine path.
    """

    def __init__(
        self, message: str, errno: int | None = None, operation: str = "", path: str = ""
    ) -> None:
        super().__init__(message)
        self.errno = errno
        self.operation = operation
        self.path = path

    def __reduce__(self):  # keep the fields across pickling (Beam's workers)
        return (type(self), (self.args[0], self.errno, self.operation, self.path))

    @classmethod
    def from_os_error(
        cls, exc: BaseException, operation: str, path: str, where: str = "the build"
    ) -> EnvironmentFault:
        """The fault for ``exc``, met ``operation`` (``writing``...) ``path`` in ``where``
        (left out when empty).

        The message names the error, the file and what to do; it never quotes the
        exception's own text, which may hold absolute paths.
        """
        code = os_errno(exc)
        name = errno.errorcode.get(code, str(code)) if code is not None else type(exc).__name__
        what, todo = _EXPLAIN.get(
            code,
            (
                _strerror(exc) or "the operating system refused",
                "fix the machine's problem and run the build again",
            ),
        )
        doing = " ".join(part for part in (operation, path) if part)
        place = f" in {where}" if where else ""
        message = f"{what} ({name}){' ' if doing else ''}{doing}{place}; {todo}"
        return cls(message, code, operation, path)


def _strerror(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.strerror:
            return str(e.strerror)
    return ""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: causes, contexts, exception arguments and the per-file
    errors of Beam's ``BeamIOError`` (``exception_details``), each once."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen) or len(seen) > 50:
            continue
        seen.append(e)
        details = getattr(e, "exception_details", None)
        inner = list(details.values()) if isinstance(details, dict) else []
        inner += [a for a in e.args if isinstance(a, BaseException)]
        todo += [x for x in (e.__cause__, e.__context__, *inner) if isinstance(x, BaseException)]
    return seen


def os_errno(exc: BaseException) -> int | None:
    """The first OS error number in ``exc`` or what it wraps (None: none there)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and isinstance(e.errno, int):
            return e.errno
    return None


def classify_os_error(exc: BaseException, operation: str) -> bool:
    """Is ``exc`` an environment fault (True: fail the run) or an input fault (False: a dead
    letter, or not an OSError at all)?

    - Writing the build (``operation == WRITING``; the image store, records, dead letters,
      stats.json, the manifest, and reading those back): every OSError. The build's names
      and folders are mmloom's own, so no input can make such a write fail.
    - Reading a source file or image (``READING``): only :data:`MACHINE_ERRNOS` (``EIO``,
      ``ENOMEM``, ``EMFILE``...), whose cause is the machine, not the file. A missing file,
      a folder, a permission bit, a file that does not decode are the data as given, the
      same on every run: input faults.
    """
    if isinstance(exc, EnvironmentFault):
        return True
    if not any(isinstance(e, OSError) for e in _chain(exc)):
        return False
    if operation == WRITING:
        return True
    return os_errno(exc) in MACHINE_ERRNOS


@contextmanager
def environment_faults(operation: str, path: str, where: str = "the build") -> Iterator[None]:
    """Raise an :class:`EnvironmentFault` naming ``path`` (relative, never absolute) for an
    OSError inside that :func:`classify_os_error` calls the machine's; anything else passes
    through unchanged."""
    try:
        yield
    except EnvironmentFault:
        raise
    except Exception as exc:
        if classify_os_error(exc, operation):
            raise EnvironmentFault.from_os_error(exc, operation, path, where) from exc
        raise


def relative_to_build(path: str, build_dir: str) -> str:
    """``path`` relative to ``build_dir`` when inside it, else its last component: how an
    environment fault names a file (the staging folder's absolute path is the machine's)."""
    base = build_dir.rstrip("/")
    if base and path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return path.rstrip("/").rsplit("/", 1)[-1]


def find_environment_fault(
    exc: BaseException, build_dirs: tuple[str, ...] = ()
) -> EnvironmentFault | None:
    """The environment fault behind what a pipeline run raised, or None.

    Beam re-raises a DoFn's exception with the step appended to its message (in-process), or
    as a RuntimeError holding the worker's traceback as text (``multi_processing``); an
    OSError that nothing wrapped may escape too. Found in that order: an
    :class:`EnvironmentFault` among the causes and contexts (the original, without Beam's
    step annotation); an OSError with a machine or permission errno (its file named relative
    to the first of ``build_dirs`` that holds it); the fault's message in the text.
    """
    chain = _chain(exc)
    faults = [e for e in chain if isinstance(e, EnvironmentFault)]
    if faults:
        best = next((f for f in reversed(faults) if f.errno is not None), faults[-1])
        return EnvironmentFault(_unstep(str(best.args[0])), best.errno, best.operation, best.path)
    for e in chain:
        code = os_errno(e) if isinstance(e, OSError) else None
        if code in MACHINE_ERRNOS or code in PERMISSION_ERRNOS:
            filename = next(
                (str(x.filename) for x in _chain(e) if getattr(x, "filename", None)), ""
            )
            return _bare_fault(e, _name_in(filename, build_dirs))
    for e in chain:
        fault = environment_fault_in_text(str(e), build_dirs)
        if fault is not None:
            return fault
    return None


def environment_fault_in_text(
    text: str, build_dirs: tuple[str, ...] = ()
) -> EnvironmentFault | None:
    """:func:`find_environment_fault` for a traceback passed on as text."""
    found = _FAULT_TEXT.search(text)
    if found:
        message = _unstep(found.group(1))
        name = _ERRNO_NAME.search(message)
        code = getattr(errno, name.group(1), None) if name else None
        return EnvironmentFault(message, code)
    for found in _ERRNO_TEXT.finditer(text):
        code = int(found.group(1))
        if code in MACHINE_ERRNOS or code in PERMISSION_ERRNOS:
            name = _name_in(found.group(2) or "", build_dirs)
            return _bare_fault(OSError(code, os.strerror(code)), name)
    return None


def _bare_fault(exc: BaseException, name: str) -> EnvironmentFault:
    """The fault for an OSError nothing wrapped: what was being done is not known."""
    return EnvironmentFault.from_os_error(exc, "at" if name else "", name, "")


def _name_in(path: str, build_dirs: tuple[str, ...]) -> str:
    for build_dir in build_dirs:
        if build_dir and path.startswith(build_dir.rstrip("/") + "/"):
            return relative_to_build(path, build_dir)
    return relative_to_build(path, "") if path else ""


def _unstep(message: str) -> str:
    return _STEP.sub("", message.strip())
