"""ReportProgress: a pass-through stage that tells the user how far a long build has come.

Runners show nothing while a local build runs, and a build of tens of thousands of items
takes minutes. Each ``ReportProgress`` stage counts the elements that pass it in this worker
process and prints to stderr a line when the first element arrives, then at most one line per
``every`` seconds, and one when a bundle ends with elements not yet reported (so a stage that
takes less than ``every`` seconds still shows its start and its count)::

    [mmloom 0:00:41] ReadVIST: 1 items so far (worker 4711)
    [mmloom 0:02:13] LoadImages: 12,000 of 40,000 drafts (30%, ETA 0:05:10) (worker 4711)

Where the stage's total is known before it starts (``total_of``: a PCollection counted with a
side input, e.g. the drafts LoadImages will load, which are all there once the readers have
finished), the line has the total, a percentage and an ETA from the rate so far; elsewhere
(a reader's items, counted as they are read) it has the count alone.

On the DirectRunner in-process there is one worker; with ``--direct_num_workers N`` each
process reports its own share (its count against the whole total). On Dataflow the lines
go to the worker logs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import apache_beam as beam


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ReportProgressFn(beam.DoFn):
    """Count elements and print progress lines (see the module docstring)."""

    def __init__(self, stage: str, unit: str, started: float, every: float) -> None:
        self._stage = stage
        self._unit = unit
        self._started = started
        self._every = every

    def setup(self) -> None:
        self._count = 0
        self._reported = 0
        self._first: float | None = None  # when this worker saw the stage's first element
        self._last = 0.0
        self._total: int | None = None

    def line(self, now: float) -> str:
        """The progress line at ``now`` (``time.time()``)."""
        head = f"[mmloom {_clock(now - self._started)}] {self._stage}: "
        if self._total is None:
            return f"{head}{self._count:,} {self._unit} so far (worker {os.getpid()})"
        share = f"{self._count:,} of {self._total:,} {self._unit}"
        if self._total > 0:
            share += f" ({min(self._count / self._total, 1.0):.0%}"
            elapsed = now - (self._first or now)
            left = self._total - self._count
            if left > 0 and elapsed > 0 and self._count > 1:
                share += f", ETA {_clock(left * elapsed / (self._count - 1))}"
            share += ")"
        return f"{head}{share} (worker {os.getpid()})"

    def _print(self, now: float) -> None:
        self._last = now
        self._reported = self._count
        print(self.line(now), file=sys.stderr, flush=True)

    def process(self, element: Any, total: int | None = None):
        self._count += 1
        if total is not None:
            self._total = total
        now = time.time()
        if self._first is None:
            self._first = now
            self._print(now)
        elif now - self._last >= self._every:
            self._print(now)
        yield element

    def finish_bundle(self) -> None:
        if self._count > self._reported:
            self._print(time.time())


class ReportProgress(beam.PTransform):
    """Pass elements through unchanged, printing their running count: at the first element,
    every ``every`` seconds, and at the end of each bundle.

    Args:
        stage: what the count is of (the stage it follows), e.g. ``LoadImages``.
        unit: what is counted, e.g. ``records``.
        started: the build's start (``time.time()``), for the elapsed-time column.
        every: seconds between two lines of one worker; 0 or less turns reporting off.
        total_of: a PCollection whose size is this stage's total (counted once, as a side
            input): the lines then have ``of N``, a percentage and an ETA. Pass one only
            where it is complete before this stage starts (behind a shuffle), or the stage
            waits for it.
    """

    def __init__(
        self,
        stage: str,
        unit: str,
        started: float,
        every: float = 10.0,
        total_of: beam.PCollection | None = None,
    ) -> None:
        super().__init__()
        self._fn = ReportProgressFn(stage, unit, started, every)
        self._on = every > 0
        self._total_of = total_of

    def expand(self, pcoll):
        if not self._on:
            return pcoll
        if self._total_of is None:
            return pcoll | "Count" >> beam.ParDo(self._fn)
        total = self._total_of | "Total" >> beam.combiners.Count.Globally()
        return pcoll | "Count" >> beam.ParDo(self._fn, total=beam.pvalue.AsSingleton(total))
