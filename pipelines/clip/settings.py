"""The config's ``clip`` block as one typed object (defaults from the config schema)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.clip.model import ClipSpec
from pipelines.config import fill_block

if TYPE_CHECKING:
    from pipelines.clip.handler import OpenClipModelHandler

NO_CLIP_REASON = "clip scoring turned off (--no-clip)"
DISABLED_REASON = "clip scoring turned off (clip.enabled: false)"


@dataclass(frozen=True)
class ClipSettings:
    """Everything the CLIP stages need, from the config's ``clip`` block.

    Attributes:
        enabled: score at all; when False, :class:`pipelines.clip.SkipClipScoring` marks the
            records ``scored: false`` with ``skip_reason``.
        spec: model, weights, device, precision.
        min_batch_size / max_batch_size: RunInference batch bounds.
        thresholds: category -> minimum lowest-pair score.
        keep_top_fraction: source -> fraction of its scored records to keep (by lowest pair).
        embedding_duplicate_threshold: cosine at or above which two images are near-duplicates;
            None turns the embedding dedupe off.
        skip_reason: the reason written into records when scoring is skipped.
    """

    enabled: bool = True
    spec: ClipSpec = field(default_factory=ClipSpec)
    min_batch_size: int = 1
    max_batch_size: int = 256
    thresholds: dict[str, float] = field(default_factory=dict)
    keep_top_fraction: dict[str, float] = field(default_factory=dict)
    embedding_duplicate_threshold: float | None = 0.95
    skip_reason: str = DISABLED_REASON

    @classmethod
    def from_config(
        cls, block: dict[str, Any] | None, base_dir: str = "", no_clip: bool = False
    ) -> ClipSettings:
        """Settings from a validated ``clip`` block (missing keys take the schema defaults).

        Args:
            block: the ``clip`` mapping of the build config (None: all defaults).
            base_dir: the config file's folder; a relative ``checkpoint`` is taken from there.
            no_clip: the CLI's ``--no-clip``: skip scoring whatever the config says.
        """
        values = fill_block("clip", block, base_dir)
        spec = ClipSpec(
            model=values["model"],
            pretrained=values.get("pretrained"),
            checkpoint=values.get("checkpoint"),
            device=values["device"],
            precision=values["precision"],
        )
        enabled = bool(values["enabled"]) and not no_clip
        return cls(
            enabled=enabled,
            spec=spec,
            min_batch_size=int(values["min_batch_size"]),
            max_batch_size=int(values["max_batch_size"]),
            thresholds={k: float(v) for k, v in (values.get("thresholds") or {}).items()},
            keep_top_fraction={
                k: float(v) for k, v in (values.get("keep_top_fraction") or {}).items()
            },
            embedding_duplicate_threshold=values.get("embedding_duplicate_threshold"),
            skip_reason=NO_CLIP_REASON if no_clip else DISABLED_REASON,
        )

    def model_handler(self, large_model: bool = False) -> OpenClipModelHandler:
        """The (unkeyed) RunInference handler for these settings (imports torch)."""
        from pipelines.clip.handler import OpenClipModelHandler

        return OpenClipModelHandler(
            self.spec,
            min_batch_size=self.min_batch_size,
            max_batch_size=self.max_batch_size,
            large_model=large_model,
        )
