"""Beam's RunInference API, imported without torch: import it from here, not from Beam.

Beam 2.77's ``apache_beam.ml.inference.base`` imports ``apache_beam.ml.inference.model_manager``
at its top, and that module imports torch and scipy (3.5 s on the quiet 2-core development
machine, 9 s and more when it is loaded: bench/RESULTS.md, "cli_latency.py --startup"). The
process that launches a build pays it before its pipeline starts, although only
``RunInference(..., use_model_manager=True)`` uses the model manager, and Beam imports it again
itself there. mmloom never uses it: its model handlers import their framework (torch,
open_clip, transformers) in ``load_model``, which runs in ``DoFn.setup()``.

So ``base`` is imported here with the model manager hidden: its ``sys.modules`` entry is set
to None for the import, which makes Beam's own ``try: ... except ImportError`` around it leave
``ModelManager = None`` (its documented fallback when torch is missing); the entry is then
removed, so a later ``import apache_beam.ml.inference.model_manager`` works as usual. The same
fallback sets ``base.resource`` (the ``resource`` module, read for the memory counters) to
None; it is put back. When ``base`` or the model manager is already imported, nothing is
hidden. ``tests/test_import_boundary.py`` checks that a CLIP build's pipeline is constructed
without torch.

The pattern for a new model stage: import the RunInference names from this module; import the
model framework inside the handler's ``load_model`` (and in functions that need it), never at
a module's top; keep preflight checks to files (exists, readable, a safetensors header).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from schemas.deadletter import scrub_detail
from schemas.errors import EnvironmentFault, environment_fault_in_text
from schemas.records import Record, with_scores
from schemas.stage import StageFn

_BASE = "apache_beam.ml.inference.base"
_MODEL_MANAGER = "apache_beam.ml.inference.model_manager"


def _import_base() -> ModuleType:
    if _BASE in sys.modules or _MODEL_MANAGER in sys.modules:
        return importlib.import_module(_BASE)
    sys.modules[_MODEL_MANAGER] = None  # type: ignore[assignment]  # hides it: ImportError
    try:
        base = importlib.import_module(_BASE)
    finally:
        if _MODEL_MANAGER in sys.modules and sys.modules[_MODEL_MANAGER] is None:
            del sys.modules[_MODEL_MANAGER]
    if getattr(base, "resource", ModuleType) is None:
        try:
            import resource
        except ImportError:  # not on this platform: Beam's None is right
            pass
        else:
            base.resource = resource
    return base


_base = _import_base()
KeyedModelHandler = _base.KeyedModelHandler
ModelHandler = _base.ModelHandler
PredictionResult = _base.PredictionResult
RunInference = _base.RunInference

__all__ = ["KeyedModelHandler", "ModelHandler", "PredictionResult", "RunInference"]


def record_origin(record: Record) -> tuple[str, str]:
    """``(source, source id)`` of a record, for its dead letters."""
    prov = record.get("provenance") or {}
    return prov.get("source", "unknown"), str(prov.get("source_id", record.get("id", "")))


class AttachScoresFn(StageFn):
    """Base of the DoFns that join a record with its RunInference results (one
    ``CoGroupByKey`` group per record id, ``{"records": [...], ...}``) and write one
    ``scores.<name>``: CLIP's, the blind audit's and the label audit's. Holds the model id the
    scores name, and finds a group's origin for its dead letters."""

    def __init__(self, model_id: str) -> None:
        self._model_id = model_id

    def origin_of(self, element: tuple[str, dict[str, list]]) -> tuple[str, str]:
        records = list(element[1]["records"])
        return record_origin(records[0]) if records else ("unknown", str(element[0]))


def failed_batch(element: tuple[list, Any]) -> Iterator[tuple[str, str]]:
    """``(key, error)`` for every item of a batch the model handler raised on, from
    ``RunInference(...).with_exception_handling()``'s ``failed_inferences``.

    Beam 2.77 hands a failure on as ``(batch, (exception type, repr, traceback lines))``
    (an exception object is also accepted). An :class:`EnvironmentFault` (a machine fault, a
    server refusing the key) is not the items' fault: it stops the run with its own message.
    """
    batch, error = element
    if isinstance(error, tuple) and len(error) == 3:
        exc_type, exc_repr, trace = error
        if isinstance(exc_type, type) and issubclass(exc_type, EnvironmentFault):
            fault = environment_fault_in_text("".join(trace))
            raise fault or EnvironmentFault(str(exc_repr))
        message = str(exc_repr)
    else:
        if isinstance(error, EnvironmentFault):
            raise error
        message = f"{type(error).__name__}: {error}"
    for key, _item in batch:
        yield key, scrub_detail(message)


class MarkScoresFn(StageFn):
    """Write one fixed ``scores.<name>`` value on every record (a scoring stage that is off:
    ``SkipClipScoring``, ``SkipBlindScoring``); counts ``out``."""

    def __init__(self, name: str, value: dict[str, Any]) -> None:
        self._name = name
        self._value = value

    def process_element(self, record: Record) -> Iterator[Record]:
        self.count("out")
        yield with_scores(record, self._name, self._value)
