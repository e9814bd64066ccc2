"""Filter stage: decide on stored CLIP scores (scoring and deciding are separate stages).

Two rules, both on a record's ``scores.clip.min_score`` (its lowest image-text pair):

* **threshold per category** (``clip.thresholds``): drop when ``min_score < threshold``;
* **per-source quantile** (``clip.keep_top_fraction``): keep the top ``f`` of a source's
  *scored* records, ranked by ``min_score`` descending, ties broken by record id ascending:
  exactly ``ceil(f * n)`` of the ``n`` scored records are kept. The ranking is over all scored
  records of the source (before thresholds), as DataComp's "top 30%".

A record failing both is dead-lettered once, for the threshold. Records with ``scored: false``
(``--no-clip``, no image segment) pass unchanged: there is nothing to decide on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from schemas.deadletter import STAGE_FILTER_CLIP, DeadLetter, dead_letter
from schemas.records import Record
from schemas.stage import RecordStage, StageFn, StageReason


class ClipFilterReason(StageReason):
    """Why ``FilterByClipScore`` drops a record (a record failing both: the threshold)."""

    CLIP_BELOW_THRESHOLD = (
        "clip_below_threshold",
        "the record's lowest CLIP pair scores below `clip.thresholds` for its category; the "
        'detail is JSON: `{"min_score", "threshold", "rule", "model", "id"}`',
    )
    CLIP_BELOW_QUANTILE = (
        "clip_below_quantile",
        "outside its source's `clip.keep_top_fraction`; the detail's `threshold` is the "
        "lowest kept score of the source",
    )


BELOW_THRESHOLD = ClipFilterReason.CLIP_BELOW_THRESHOLD
BELOW_QUANTILE = ClipFilterReason.CLIP_BELOW_QUANTILE


def rank_key(min_score: float, record_id: str) -> tuple[float, str]:
    """Sort key of the quantile rule: higher score first, then id ascending."""
    return (-min_score, record_id)


def quantile_cutoff(ranked: Iterable[tuple[float, str]], fraction: float) -> tuple[float, str]:
    """The rank key of the last kept record when keeping the top ``fraction``.

    Args:
        ranked: ``(min_score, record_id)`` of one source's scored records.
        fraction: in (0, 1]; ``ceil(fraction * n)`` records are kept.
    """
    keys = sorted(rank_key(s, i) for s, i in ranked)
    if not keys:
        raise ValueError("no scored records to rank")
    keep = min(len(keys), max(1, math.ceil(fraction * len(keys) - 1e-9)))
    return keys[keep - 1]


def decide(
    record: Record,
    thresholds: dict[str, float],
    cutoffs: dict[str, tuple[float, str]],
    fractions: dict[str, float],
) -> DeadLetter | None:
    """None to keep ``record``, else the dead letter that drops it."""
    clip = (record.get("scores") or {}).get("clip") or {}
    if not clip.get("scored"):
        return None
    score = clip["min_score"]
    prov = record["provenance"]
    threshold = thresholds.get(record["category"])

    def drop(reason: str, limit: float, rule: str) -> DeadLetter:
        detail = {
            "min_score": score,
            "threshold": limit,
            "rule": rule,
            "model": clip.get("model"),
            "id": record["id"],
        }
        return dead_letter(
            STAGE_FILTER_CLIP,
            reason,
            prov["source"],
            prov["source_id"],
            json.dumps(detail, sort_keys=True),
        )

    if threshold is not None and score < threshold:
        return drop(BELOW_THRESHOLD, threshold, f"clip.thresholds.{record['category']}")
    cutoff = cutoffs.get(prov["source"])
    if cutoff is not None and rank_key(score, record["id"]) > cutoff:
        rule = f"clip.keep_top_fraction.{prov['source']}={fractions[prov['source']]}"
        return drop(BELOW_QUANTILE, -cutoff[0], rule)
    return None


class _DecideFn(StageFn):
    def __init__(self, thresholds: dict[str, float], fractions: dict[str, float]) -> None:
        self._thresholds = thresholds
        self._fractions = fractions

    def process_element(
        self, record: Record, cutoffs: dict[str, tuple[float, str]]
    ) -> Iterator[Record | TaggedOutput]:
        self.count("in")
        if not ((record.get("scores") or {}).get("clip") or {}).get("scored"):
            self.count("passed_not_scored")
        dl = decide(record, self._thresholds, cutoffs, self._fractions)
        if dl is None:
            self.count("out")
            yield record
        else:
            yield self.reject_letter(dl)


def _rank_item(fractions: dict[str, float]):
    def fn(record: Record) -> list[tuple[str, tuple[float, str]]]:
        clip = (record.get("scores") or {}).get("clip") or {}
        source = record["provenance"]["source"]
        if not clip.get("scored") or source not in fractions:
            return []
        return [(source, (clip["min_score"], record["id"]))]

    return fn


class FilterByClipScore(RecordStage):
    """Drop records whose lowest CLIP pair is below a category threshold or a source quantile.

    Args:
        thresholds: category (SA, PBL, MSR, IF) -> minimum ``min_score``; missing: no rule.
        keep_top_fraction: source -> fraction of its scored records to keep; missing: no rule.

    Input: records with ``scores.clip`` (from :class:`ScoreImageText` or
    :class:`SkipClipScoring`).

    Output: ``"records"`` (kept records, unchanged) and ``DEAD`` (stage ``filter_clip``,
    reasons :class:`ClipFilterReason`).

    Counters (namespace ``FilterByClipScore``): ``in``, ``out``, ``passed_not_scored``,
    ``dropped_<reason>``.

    Example::

        kept = scored["records"] | "FilterByClipScore" >> FilterByClipScore({"SA": 0.2})
    """

    stage = STAGE_FILTER_CLIP
    Reason = ClipFilterReason
    fns = (_DecideFn,)

    def __init__(
        self,
        thresholds: dict[str, float] | None = None,
        keep_top_fraction: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._thresholds = dict(thresholds or {})
        self._fractions = dict(keep_top_fraction or {})
        for source, f in self._fractions.items():
            if not 0 < f <= 1:
                raise ValueError(f"clip.keep_top_fraction.{source} must be in (0, 1], got {f}")

    def expand_stage(self, records: beam.PCollection[Record]) -> beam.pvalue.DoOutputsTuple:
        fractions = self._fractions
        cutoffs = (
            records
            | "RankBySource" >> beam.FlatMap(_rank_item(fractions))
            | "GroupBySource" >> beam.GroupByKey()
            | "QuantileCutoff"
            >> beam.MapTuple(lambda src, ranked: (src, quantile_cutoff(ranked, fractions[src])))
        )
        return records | "DecideClipScore" >> self.par_do(
            _DecideFn(self._thresholds, fractions), cutoffs=beam.pvalue.AsDict(cutoffs)
        )
