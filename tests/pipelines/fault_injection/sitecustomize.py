"""Test-only fault injection for builds run in a child process (tests/pipelines/test_env_faults.py).

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; a test that puts this folder
there makes the image store's one low-level write (``schemas.store.write_object``) fail in
that process and in every Beam worker process it starts (they inherit the environment), as
a full or broken disk would. Production code holds no hook: nothing happens unless a test
sets ``MMLOOM_TEST_FAIL_STORE_WRITES`` to ``ERRNO_NAME`` (every write fails) or
``ERRNO_NAME:N`` (the first N writes of each process fail, then the disk works again).
"""

from __future__ import annotations

import errno
import os

_SPEC = os.environ.get("MMLOOM_TEST_FAIL_STORE_WRITES")

if _SPEC:
    import schemas.store

    _name, _, _count = _SPEC.partition(":")
    _code = getattr(errno, _name)
    _left = [int(_count) if _count else -1]
    _write = schemas.store.write_object

    def _failing_write(uri: str, data: bytes) -> None:
        if _left[0] != 0:
            _left[0] -= 1
            raise OSError(_code, os.strerror(_code), uri)
        _write(uri, data)

    schemas.store.write_object = _failing_write
