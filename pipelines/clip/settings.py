"""What the CLIP stages need, built from the config's typed ``clip`` block."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from pipelines.clip.model import ClipSpec, require_weights
from pipelines.config import DISABLED_REASON, NO_CLIP_REASON, ClipConfig

if TYPE_CHECKING:
    from pipelines.clip.handler import OpenClipModelHandler

__all__ = ["DISABLED_REASON", "NO_CLIP_REASON", "ClipSettings"]


@dataclass(frozen=True)
class ClipSettings(ClipConfig):
    """The config's ``clip`` block (:class:`pipelines.config.ClipConfig`, every field as it
    is there: ``enabled`` with ``--no-clip`` applied, ``skip_reason``, batch bounds,
    ``share_model``, ``thresholds``, ``keep_top_fraction``, ``embedding_duplicate_threshold``)
    plus what the CLIP stages derive from it: :attr:`spec` and :meth:`model_handler`.

    When ``enabled`` is False, :class:`pipelines.clip.SkipClipScoring` marks the records
    ``scored: false`` with ``skip_reason``.
    """

    @classmethod
    def from_config(cls, clip: ClipConfig) -> ClipSettings:
        """Settings from the build config's ``clip`` block (defaults and ``--no-clip`` are
        already applied there: see :meth:`pipelines.config.ClipConfig.from_block`)."""
        return cls(**{f.name: getattr(clip, f.name) for f in fields(ClipConfig)})

    @property
    def spec(self) -> ClipSpec:
        """Model, weights, device and precision."""
        return ClipSpec(
            model=self.model,
            pretrained=self.pretrained,
            checkpoint=self.checkpoint,
            device=self.device,
            precision=self.precision,
        )

    def model_handler(self) -> OpenClipModelHandler:
        """The (unkeyed) RunInference handler for these settings (torch and open_clip are
        imported when it loads the model, in ``DoFn.setup()``)."""
        from pipelines.clip.handler import OpenClipModelHandler

        return OpenClipModelHandler(
            self.spec,
            min_batch_size=self.min_batch_size,
            max_batch_size=self.max_batch_size,
            large_model=self.share_model,
        )

    def require_weights(self, config_path: str) -> None:
        """The preflight of a scoring build: its weights are on this machine or can be
        downloaded now (:func:`pipelines.clip.model.require_weights`; nothing is loaded).
        Nothing to check when scoring is off (``--no-clip``).

        Raises:
            PipelineConfigError: one message naming ``clip.checkpoint`` and ``--no-clip``.
        """
        if self.enabled:
            require_weights(self.spec, config_path)
