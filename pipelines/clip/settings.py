"""What the CLIP stages need, built from the config's typed ``clip`` block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.clip.model import ClipSpec
from pipelines.config import DISABLED_REASON, NO_CLIP_REASON, ClipConfig

if TYPE_CHECKING:
    from pipelines.clip.handler import OpenClipModelHandler

__all__ = ["DISABLED_REASON", "NO_CLIP_REASON", "ClipSettings"]


@dataclass(frozen=True)
class ClipSettings:
    """Everything the CLIP stages need, from a :class:`pipelines.config.ClipConfig`.

    Attributes:
        enabled: score at all (the config's decision, ``--no-clip`` included); when False,
            :class:`pipelines.clip.SkipClipScoring` marks the records ``scored: false`` with
            ``skip_reason``.
        spec: model, weights, device, precision.
        min_batch_size / max_batch_size: RunInference batch bounds.
        share_model: one model per machine, shared across worker processes.
        thresholds: category -> minimum lowest-pair score.
        keep_top_fraction: source -> fraction of its scored records to keep (by lowest pair).
        embedding_duplicate_threshold: cosine at or above which two images are near-duplicates;
            None turns the embedding dedupe off.
        skip_reason: the reason written into records when scoring is skipped (None when
            ``enabled``).
    """

    enabled: bool
    spec: ClipSpec
    min_batch_size: int
    max_batch_size: int
    share_model: bool
    thresholds: dict[str, float]
    keep_top_fraction: dict[str, float]
    embedding_duplicate_threshold: float | None
    skip_reason: str | None

    @classmethod
    def from_config(cls, clip: ClipConfig) -> ClipSettings:
        """Settings from the build config's ``clip`` block (defaults and ``--no-clip`` are
        already applied there: see :meth:`pipelines.config.ClipConfig.from_block`)."""
        spec = ClipSpec(
            model=clip.model,
            pretrained=clip.pretrained,
            checkpoint=clip.checkpoint,
            device=clip.device,
            precision=clip.precision,
        )
        return cls(
            enabled=clip.enabled,
            spec=spec,
            min_batch_size=clip.min_batch_size,
            max_batch_size=clip.max_batch_size,
            share_model=clip.share_model,
            thresholds=dict(clip.thresholds),
            keep_top_fraction=dict(clip.keep_top_fraction),
            embedding_duplicate_threshold=clip.embedding_duplicate_threshold,
            skip_reason=clip.skip_reason,
        )

    def model_handler(self) -> OpenClipModelHandler:
        """The (unkeyed) RunInference handler for these settings (imports torch)."""
        from pipelines.clip.handler import OpenClipModelHandler

        return OpenClipModelHandler(
            self.spec,
            min_batch_size=self.min_batch_size,
            max_batch_size=self.max_batch_size,
            large_model=self.share_model,
        )
