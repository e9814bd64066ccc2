"""RestructureRecords: source items -> draft interleaved records, via each source's parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from schemas.deadletter import DEAD, STAGE_RESTRUCTURE, from_exception, reject_letter
from schemas.metrics import inc
from schemas.records import DraftRecord
from sources import get_source
from sources.base import option_roots, scrub_paths


class RestructureFn(beam.DoFn):
    def __init__(self, options_by_source: dict[str, dict[str, Any]]) -> None:
        self._options = options_by_source

    def setup(self) -> None:
        self._sources = {name: get_source(name) for name in self._options}

    def process(self, item: dict[str, Any]) -> Iterator[DraftRecord | TaggedOutput]:
        source = item["source"]
        try:
            draft = self._sources[source].restructure(item, self._options[source])
        except Exception as exc:  # a bad item is a dead letter, never a crash
            sid = item.get("source_id", "?")
            letter = from_exception(STAGE_RESTRUCTURE, source, sid, exc)
            # details name files relative to the source's configured paths, not the machine's
            letter["detail"] = scrub_paths(letter["detail"], option_roots(self._options[source]))
            yield reject_letter("RestructureRecords", letter)
            return
        inc("RestructureRecords", "out")
        yield draft


class RestructureRecords(beam.PTransform):
    """Apply each source's ``restructure`` to its items (one item -> one draft or one dead letter).

    Args:
        options_by_source: source name -> options from the build config.
    Input: items (source-specific dicts) from the ``Read<Source>`` transforms.
    Output: ``DoOutputsTuple``: main ``drafts`` (``DraftRecord``); ``DEAD``: ``DeadLetter``
    (stage ``restructure``).
    Counters (``RestructureRecords``): ``out``, ``dropped_<reason>``.
    """

    def __init__(self, options_by_source: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self._options = options_by_source

    def expand(self, items: beam.PCollection[dict[str, Any]]) -> beam.pvalue.DoOutputsTuple:
        return items | "RestructureFn" >> beam.ParDo(RestructureFn(self._options)).with_outputs(
            DEAD, main="drafts"
        )
