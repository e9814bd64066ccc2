"""SkipClipScoring: mark records as not CLIP-scored (``--no-clip``), without loading CLIP.

Kept apart from :mod:`pipelines.clip.score`, whose RunInference import loads torch: a
``--no-clip`` build (and each of its worker processes) never imports torch.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from schemas.metrics import inc
from schemas.records import not_scored


class SkipClipScoring(beam.PTransform):
    """Mark every record ``scores.clip = {scored: false, reason}`` (``--no-clip``).

    Args:
        reason: why scoring was skipped (``ClipSettings.skip_reason``).

    Input: records. Output: the same records with ``scores.clip`` replaced.
    Dead letters: none. Counters (namespace ``SkipClipScoring``): ``out``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__()
        self._reason = reason

    def expand(self, records):
        reason = self._reason

        def mark(record: dict[str, Any]) -> dict[str, Any]:
            inc("SkipClipScoring", "out")
            out = dict(record)
            out["scores"] = {**(record.get("scores") or {}), "clip": not_scored(reason)}
            return out

        return records | "MarkNotScored" >> beam.Map(mark)
