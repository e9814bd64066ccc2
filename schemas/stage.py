"""RecordStage: the base of every Beam stage that can drop input (a dead letter per drop).

Modelled on datatrove's ``BaseFilter`` and Beam's ``RunInference``: a stage says *what* it
does with one element; the base owns the bookkeeping every stage shares:

* **counters**, in the Beam Metrics namespace named after the stage class
  (:meth:`RecordStage.count`);
* **dead letters**: :meth:`RecordStage.reject` builds the letter (stage name, reason,
  source, id, detail, unit), counts ``dropped_<reason>`` (``images_dropped_<reason>`` for an
  image of a kept record) and returns it as the ``DEAD`` output to yield; no stage builds
  that output itself;
* **exception -> dead letter**: a :class:`StageFn`'s element that raises becomes one dead
  letter (a :class:`schemas.errors.RecordError` keeps its reason; anything else is
  ``unexpected_error`` with the exception type, its detail scrubbed by
  :func:`schemas.deadletter.scrub_detail` and the stage's :meth:`StageFn.scrub`), never a
  crash. An :class:`schemas.errors.EnvironmentFault` (a full disk, an I/O error) is not bad
  input: it propagates and stops the run;
* **the reasons**: each stage lists the reasons it writes in its ``Reason`` enum (a
  :class:`StageReason`: a ``str``, so the dead letters hold the same bytes), each with what
  it means. README.md's dead-letter reason table is generated from these enums
  (``tools/reason_table.py``) and a test keeps the two equal;
* **the outputs**: ``expand`` returns the main output (``main``, e.g. ``records``), ``DEAD``,
  and the stage's further ``outputs`` (e.g. ``report``), each readable as ``result[tag]`` and
  ``result.tag``: one ParDo's ``DoOutputsTuple`` as it is, or else a :class:`StageResult`.
  ``pipelines.build`` gathers every stage's ``DEAD`` from it, so no stage's dead letters are
  wired by hand.

Example::

    class DropEmpty(RecordStage):
        stage = "drop_empty"

        class Reason(StageReason):
            EMPTY = "empty", "the record has no text"

        def expand_stage(self, records):
            return records | self.par_do(DropEmptyFn())

    class DropEmptyFn(StageFn):
        def process_element(self, record):
            if not record["text"]:
                yield self.reject(DropEmpty.Reason.EMPTY, *origin(record))
                return
            self.count("out")
            yield record
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, ClassVar

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import DoOutputsTuple, PCollection, TaggedOutput

from schemas.deadletter import DEAD, UNIT_IMAGE, UNIT_RECORD, DeadLetter, dead_letter, origin
from schemas.deadletter import from_exception as _from_exception
from schemas.errors import EnvironmentFault

UNEXPECTED_ERROR = "unexpected_error"
UNEXPECTED_ERROR_DOC = (
    "an exception nobody foresaw (a bug): the detail names its type; counted like any other "
    "reason instead of crashing the run"
)


class StageReason(StrEnum):
    """Base of a stage's ``Reason`` enum: members are ``NAME = "reason", "what it means"``.

    A member *is* its reason string (``StrEnum``), so it goes into dead letters, counters and
    ``stats.json`` byte for byte as the plain string did; ``.doc`` is its meaning, the
    README table's third column.
    """

    doc: str

    def __new__(cls, value: str, doc: str = "") -> StageReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member


class NoReason(StageReason):
    """The reasons of a stage that drops nothing."""


class StageResult(dict):
    """The outputs of a stage built from several steps: ``{tag: PCollection}``, also readable
    as attributes (``result.records``, ``result[DEAD]``, ``result["report"]``; a tag named
    like a dict method, such as ``items``, reads only as ``result["items"]``)."""

    def __getattr__(self, tag: str) -> PCollection:
        try:
            return self[tag]
        except KeyError:
            raise AttributeError(tag) from None


class CountedStage(beam.PTransform):
    """Base of a stage that drops nothing but counts: counters in the namespace named after
    the class (``namespace``, unless a subclass sets it). :class:`RecordStage` builds on it."""

    namespace: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "namespace" not in cls.__dict__:
            cls.namespace = cls.__name__

    @classmethod
    def count(cls, name: str, value: int = 1) -> None:
        """Increment counter ``<namespace>/<name>`` (Dataflow UI, run logs, tests)."""
        Metrics.counter(cls.namespace, name).inc(value)


class RecordStage(CountedStage):
    """Base of every stage that emits dead letters (see the module docstring).

    Subclasses set:
        stage: the dead-letter ``stage`` field (``schemas.deadletter.STAGES``).
        Reason: a :class:`StageReason` enum of the reasons the stage writes (besides
            ``unexpected_error``, which every stage may write).
        main: the main output's tag (default ``records``).
        outputs: further output tags (e.g. ``("report",)``).
        namespace: the counter namespace; default the class name.
        fns: the stage's :class:`StageFn` classes, bound to it here (so a DoFn made outside
            the pipeline, in a test, counts and rejects as its stage).
    and implement :meth:`expand_stage` (usually ``pcoll | self.par_do(SomeFn())``).
    """

    stage: ClassVar[str] = ""
    Reason: ClassVar[type[StageReason]] = NoReason
    main: ClassVar[str] = "records"
    outputs: ClassVar[tuple[str, ...]] = ()
    fns: ClassVar[tuple[type[StageFn], ...]] = ()
    # reasons decided outside the stage's own code (a source's parser), documented elsewhere
    more_reasons: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for fn in cls.__dict__.get("fns", ()):
            fn.stage_cls = cls

    # --- what the DoFns call ---------------------------------------------------------------

    @classmethod
    def reject_letter(cls, letter: DeadLetter) -> TaggedOutput:
        """Count ``letter`` (``dropped_<reason>``, or ``images_dropped_<reason>`` for an image
        of a kept record) and return it as the ``DEAD`` output to yield."""
        letter["reason"] = str(letter["reason"])  # a plain str on the wire, whatever came in
        prefix = "images_dropped_" if letter["unit"] == UNIT_IMAGE else "dropped_"
        cls.count(prefix + letter["reason"])
        return TaggedOutput(DEAD, letter)

    @classmethod
    def reject(
        cls,
        reason: str,
        source: str,
        source_id: str,
        detail: str = "",
        unit: str = UNIT_RECORD,
    ) -> TaggedOutput:
        """Reject one unit: its dead letter (stage ``cls.stage``), counted, as ``DEAD``.

        ``reason`` is one of ``cls.Reason`` (or a reason a :class:`RecordError` of the pure
        code carries); the letter holds its plain string.
        """
        return cls.reject_letter(
            dead_letter(cls.stage, str(reason), source, source_id, detail, unit)
        )

    @classmethod
    def reject_exception(
        cls,
        source: str,
        source_id: str,
        exc: BaseException,
        scrub: Callable[[str], str] | None = None,
    ) -> TaggedOutput:
        """:meth:`reject` for an exception: a RecordError keeps its reason and detail,
        anything else is ``unexpected_error`` with the exception type; ``scrub`` rewrites
        the detail (machine paths)."""
        letter = _from_exception(cls.stage, source, source_id, exc)
        if scrub is not None:
            letter["detail"] = scrub(letter["detail"])
        return cls.reject_letter(letter)

    @classmethod
    def reasons(cls) -> list[StageReason]:
        """The stage's own reasons, in declaration order."""
        return list(cls.Reason)

    # --- building the graph ----------------------------------------------------------------

    def par_do(
        self,
        fn: beam.DoFn,
        *args: Any,
        main: str | None = None,
        tags: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> beam.PTransform:
        """``beam.ParDo(fn, *args, **kwargs)`` with the ``DEAD`` output, more ``tags``, and
        ``main`` (default the stage's), ``fn`` bound to this stage (its counters and dead
        letters; a plain DoFn rejects through the stage itself, as ``SourceReader``'s)."""
        fn.stage_cls = type(self)
        return beam.ParDo(fn, *args, **kwargs).with_outputs(DEAD, *tags, main=main or self.main)

    def expand_stage(self, pcoll: PCollection) -> Any:
        """The stage's graph: a ``DoOutputsTuple`` or a dict holding ``main``, ``DEAD`` and
        ``outputs``."""
        raise NotImplementedError

    def expand(self, pcoll: PCollection) -> DoOutputsTuple | StageResult:
        out = self.expand_stage(pcoll)
        if isinstance(out, DoOutputsTuple):  # one ParDo's outputs (``par_do``): as they are
            return out
        return StageResult({tag: out[tag] for tag in (self.main, DEAD, *self.outputs)})


class StageFn(beam.DoFn):
    """A DoFn of a :class:`RecordStage`: implement :meth:`process_element`.

    Every output of one element is produced before any is emitted, so an element that
    raises emits exactly one dead letter (:meth:`RecordStage.reject_exception`, named by
    :meth:`origin_of`) and nothing else. An ``EnvironmentFault`` propagates.
    """

    stage_cls: ClassVar[type[RecordStage]]  # set by its stage's ``fns`` (and ``par_do``)

    def process_element(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        raise NotImplementedError

    def origin_of(self, element: Any) -> tuple[str, str]:
        """``(source, source_id)`` of the dead letter for an element that raised."""
        return origin(element)

    def scrub(self, detail: str) -> str:
        """An exception's dead-letter detail as written (default: unchanged)."""
        return detail

    # no annotations here: Beam reads ``process``'s as type hints of the stage's input
    def process(self, element, *args, **kwargs):
        try:
            outputs = list(self.process_element(element, *args, **kwargs))
        except EnvironmentFault:  # the machine failed, not this input: stop the run
            raise
        except Exception as exc:  # every other failure is a dead letter, never a crash
            source, source_id = self.origin_of(element)
            yield self.stage_cls.reject_exception(source, source_id, exc, self.scrub)
            return
        yield from outputs

    # shorthands, so a DoFn reads like its stage
    def reject(self, *args: Any, **kwargs: Any) -> TaggedOutput:
        return self.stage_cls.reject(*args, **kwargs)

    def reject_letter(self, letter: DeadLetter) -> TaggedOutput:
        return self.stage_cls.reject_letter(letter)

    def count(self, name: str, value: int = 1) -> None:
        self.stage_cls.count(name, value)
