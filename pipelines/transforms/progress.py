"""ReportProgress: a pass-through stage that tells the user how far a long build has come.

Runners show nothing while a local build runs, and a build of tens of thousands of items
takes minutes. Each ``ReportProgress`` stage counts the elements that pass it in this worker
process and prints at most one line per ``every`` seconds to stderr::

    [mmloom 0:02:13] LoadImages: 12,000 records so far (worker 4711)

On the DirectRunner in-process there is one worker; with ``--direct_num_workers N`` each
process reports its own share. On Dataflow the lines go to the worker logs.
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
    def __init__(self, stage: str, unit: str, started: float, every: float) -> None:
        self._stage = stage
        self._unit = unit
        self._started = started
        self._every = every

    def setup(self) -> None:
        self._count = 0
        self._last = time.time()

    def _line(self) -> str:
        return (
            f"[mmloom {_clock(time.time() - self._started)}] {self._stage}: "
            f"{self._count:,} {self._unit} so far (worker {os.getpid()})"
        )

    def process(self, element: Any):
        self._count += 1
        now = time.time()
        if now - self._last >= self._every:
            self._last = now
            print(self._line(), file=sys.stderr, flush=True)
        yield element


class ReportProgress(beam.PTransform):
    """Pass elements through unchanged, printing the running count every ``every`` seconds.

    Args:
        stage: what the count is of (the stage it follows), e.g. ``LoadImages``.
        unit: what is counted, e.g. ``records``.
        started: the build's start (``time.time()``), for the elapsed-time column.
        every: seconds between two lines of one worker; 0 or less turns reporting off.
    """

    def __init__(self, stage: str, unit: str, started: float, every: float = 10.0) -> None:
        super().__init__()
        self._fn = ReportProgressFn(stage, unit, started, every)
        self._on = every > 0

    def expand(self, pcoll):
        if not self._on:
            return pcoll
        return pcoll | "Count" >> beam.ParDo(self._fn)
