"""The shared pieces of the RunInference stages (CLIP, blind audit, label audit)."""

from __future__ import annotations

import traceback

import pytest

from pipelines.transforms.inference import failed_batch
from schemas.errors import EnvironmentFault


def _beam_failure(exc: BaseException) -> tuple:
    """What Beam 2.77's RunInference dead-letter output holds for a batch that raised."""
    return (type(exc), repr(exc), traceback.format_exception(exc))


def test_a_failed_batch_names_each_item_with_the_exception_not_the_tuple():
    batch = [("a", object()), ("b", object())]
    got = list(failed_batch((batch, _beam_failure(ValueError("bad shape 3x4")))))
    assert [k for k, _ in got] == ["a", "b"]
    assert all("ValueError" in m and "bad shape 3x4" in m for _, m in got)
    assert not any(m.startswith("tuple") for _, m in got)
    # an exception object (older Beam, or a handler's own path) reads the same way
    ((key, message),) = failed_batch(([("c", None)], RuntimeError("oom")))
    assert (key, message) == ("c", "RuntimeError: oom")


def test_an_environment_fault_in_a_batch_stops_the_run():
    fault = EnvironmentFault("the disk is full: free space and rerun")
    with pytest.raises(EnvironmentFault):
        list(failed_batch(([("a", None)], _beam_failure(fault))))
    with pytest.raises(EnvironmentFault):
        list(failed_batch(([("a", None)], fault)))
