"""mmloom's small exception hierarchy; messages say what to do next."""

from __future__ import annotations


class MmloomError(Exception):
    """Base class."""


class PipelineConfigError(MmloomError):
    """A bad config or missing input, raised before the pipeline starts."""


class RecordError(MmloomError):
    """One input item cannot become a record. Never escapes a stage: it becomes a dead letter.

    Args:
        reason: a stable snake_case reason, counted in stats.json (e.g. ``image_missing``).
        detail: a human-readable explanation naming the file, position or key involved.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
