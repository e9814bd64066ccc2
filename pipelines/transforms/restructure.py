"""RestructureRecords: source items -> draft interleaved records, via each source's parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from schemas.deadletter import STAGE_RESTRUCTURE
from schemas.records import DraftRecord
from schemas.stage import RecordStage, StageFn
from sources import get_source
from sources.base import option_roots, scrub_paths


class RestructureFn(StageFn):
    def __init__(self, options_by_source: dict[str, dict[str, Any]]) -> None:
        self._options = options_by_source

    def setup(self) -> None:
        self._sources = {name: get_source(name) for name in self._options}

    def process_element(self, item: dict[str, Any]) -> Iterator[DraftRecord]:
        source = item["source"]
        draft = self._sources[source].restructure(item, self._options[source])
        self.count("out")
        yield draft

    def origin_of(self, item: dict[str, Any]) -> tuple[str, str]:
        return item["source"], item.get("source_id", "?")

    def process(self, item: dict[str, Any]) -> Iterator[Any]:
        self._scrub_roots = option_roots(self._options[item["source"]])
        yield from super().process(item)

    def scrub(self, detail: str) -> str:
        # details name files relative to the source's configured paths, not the machine's
        return scrub_paths(detail, self._scrub_roots)


class RestructureRecords(RecordStage):
    """Apply each source's ``restructure`` to its items (one item -> one draft or one dead letter).

    Args:
        options_by_source: source name -> options from the build config.
    Input: items (source-specific dicts) from the ``Read<Source>`` transforms.
    Output: main ``drafts`` (``DraftRecord``); ``DEAD``: ``DeadLetter`` (stage
    ``restructure``; the reasons are each source's, listed in its README).
    Counters (``RestructureRecords``): ``out``, ``dropped_<reason>``.
    """

    stage = STAGE_RESTRUCTURE
    fns = (RestructureFn,)
    main = "drafts"
    more_reasons = "each source's restructure reasons: see its README (`sources/<name>/README.md`)"

    def __init__(self, options_by_source: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self._options = options_by_source

    def expand_stage(self, items: beam.PCollection[dict[str, Any]]) -> beam.pvalue.DoOutputsTuple:
        return items | "RestructureFn" >> self.par_do(RestructureFn(self._options))
