"""mmloom's small exception hierarchy; messages say what to do next."""

from __future__ import annotations


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
    return RecordError("unexpected_error", f"{type(exc).__name__}: {exc}", source_id)
