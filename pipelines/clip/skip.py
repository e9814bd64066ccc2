"""SkipClipScoring: mark records as not CLIP-scored (``--no-clip``), without loading CLIP.

Kept apart from :mod:`pipelines.clip.score`, whose RunInference import loads torch: a
``--no-clip`` build (and each of its worker processes) never imports torch.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.transforms.inference import MarkScoresFn
from schemas.deadletter import STAGE_SCORE_CLIP
from schemas.records import not_scored
from schemas.stage import RecordStage


class SkipClipScoring(RecordStage):
    """Mark every record ``scores.clip = {scored: false, reason}`` (``--no-clip``).

    Args:
        reason: why scoring was skipped (``ClipSettings.skip_reason``).

    Input: records. Output: ``records``, the same records with ``scores.clip`` replaced;
    ``DEAD``: no reason of its own (stage ``score_clip``, standing in for scoring).
    Counters (namespace ``SkipClipScoring``): ``out``.
    """

    stage = STAGE_SCORE_CLIP
    fns = (MarkScoresFn,)

    def __init__(self, reason: str) -> None:
        super().__init__()
        self._reason = reason

    def expand_stage(self, records: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return records | "MarkNotScored" >> self.par_do(
            MarkScoresFn("clip", not_scored(self._reason))
        )
