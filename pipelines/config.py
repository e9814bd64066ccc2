"""The build config: one typed place for what ``mmloom build`` reads from YAML.

``load_config(path)`` parses the YAML (``schemas.yamlsafe``: alias bombs and duplicate keys
are refused before anything is built from the text), validates it against
``schemas/config.schema.json`` (bounds on every number),
fills in the schema's defaults (here, once: no stage repeats a default), resolves relative
paths against the config file's folder, drops disabled sources and asks each source to check
its options (paths exist). Rules between keys that the schema cannot state (such as
``clip.min_batch_size`` <= ``clip.max_batch_size``) are checked where the typed blocks are
built. The ``limits``, ``images``, ``dedupe``, ``clip`` and ``audit`` blocks become
frozen dataclasses (:class:`LimitsConfig`, :class:`ImagesConfig`, :class:`DedupeConfig`,
:class:`ClipConfig`, :class:`AuditConfig`), and
``--no-clip`` is decided into ``ClipConfig.enabled``. Any problem is a
:class:`PipelineConfigError` raised before a pipeline is built.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems

from schemas import load_schema, with_defaults, yamlsafe
from schemas.errors import PipelineConfigError, RecordError
from schemas.fs import read_bytes
from schemas.validation import validate_with
from sources import config_schema, get_source

# source options that name a folder (the rest name files or globs)
FOLDER_OPTIONS = ("images", "root")

# a build config is a short YAML file; a larger one is not a config (and never read whole)
MAX_CONFIG_BYTES = 1 << 20

NO_CLIP_REASON = "clip scoring turned off (--no-clip)"
DISABLED_REASON = "clip scoring turned off (clip.enabled: false)"
NO_BLIND_REASON = "blind scoring turned off (--no-blind)"
BLIND_DISABLED_REASON = "blind scoring turned off (audit.blind.enabled: false)"


def block_properties(name: str) -> dict[str, Any]:
    """The ``properties`` of config block ``$defs.<name>`` of the config schema
    (``schemas/config.schema.json`` with the sources' ``config.schema.json`` blocks)."""
    if name in load_schema("config")["$defs"]:
        return load_schema("config")["$defs"][name]["properties"]
    return config_schema()["$defs"][name]["properties"]


def fill_block(name: str, options: dict[str, Any] | None, base_dir: str) -> dict[str, Any]:
    """Config block ``$defs.<name>`` (a source, ``images``, ``dedupe``, ``clip``) with the
    schema's defaults filled in and its path options resolved against ``base_dir``."""
    properties = block_properties(name)
    out = with_defaults(properties, options)
    for key, prop in properties.items():
        if key in out and prop.get("$ref") == "#/$defs/path":
            out[key] = resolve_path(out[key], base_dir)
    return out


@dataclass(frozen=True)
class LimitsConfig:
    """The ``limits`` block: size caps on reads of source data (schema: ``$defs.limits``).

    Attributes:
        max_file_bytes: cap on a source file (JSON, JSON Lines, parquet), and on what a
            compressed one expands to.
        max_image_bytes: cap on an image file read by ``LoadImages``.
    """

    max_file_bytes: int
    max_image_bytes: int

    @classmethod
    def from_block(cls, block: dict[str, Any] | None = None) -> LimitsConfig:
        """From a validated ``limits`` mapping; keys it lacks take the schema's defaults."""
        return cls(**fill_block("limits", block, ""))


@dataclass(frozen=True)
class ImagesConfig:
    """The ``images`` block: image integrity gates (schema: ``$defs.images``).

    Attributes:
        min_side: smallest accepted width or height in pixels, after EXIF orientation.
        max_aspect: largest accepted long side / short side.
        max_pixels: decompression-bomb cap on width x height, checked before decoding.
        exempt_sources: sources whose images skip ``min_side``/``max_aspect``.
        on_bad_image: ``drop_record`` or ``drop_segment``.
        draft_decode: hash JPEGs from a reduced-scale (DCT draft) decode.
    """

    min_side: int
    max_aspect: float
    max_pixels: int
    exempt_sources: tuple[str, ...]
    on_bad_image: str
    draft_decode: bool

    @classmethod
    def from_block(cls, block: dict[str, Any] | None = None) -> ImagesConfig:
        """From a validated ``images`` mapping; keys it lacks take the schema's defaults."""
        values = fill_block("images", block, "")
        return cls(**{**values, "exempt_sources": tuple(values["exempt_sources"])})


@dataclass(frozen=True)
class DedupeConfig:
    """The ``dedupe`` block (schema: ``$defs.dedupe``; meanings in ``pipelines.dedupe.stages``).

    Attributes:
        phash_distance: k, the pHash Hamming distance of near-duplicate images.
        max_image_uses: an image cluster used by more records than this is dropped.
        text_jaccard: word 5-gram Jaccard at which near-equal question texts match.
        text_min_words: shorter question texts match only when equal.
        text_categories: categories where near-equal question texts may match.
    """

    phash_distance: int
    max_image_uses: int
    text_jaccard: float
    text_min_words: int
    text_categories: tuple[str, ...]

    @classmethod
    def from_block(cls, block: dict[str, Any] | None = None) -> DedupeConfig:
        """From a validated ``dedupe`` mapping; keys it lacks take the schema's defaults."""
        values = fill_block("dedupe", block, "")
        return cls(**{**values, "text_categories": tuple(values["text_categories"])})


@dataclass(frozen=True)
class AuditConfig:
    """The ``audit`` block (schema: ``$defs.audit``; meanings in ``pipelines.audit.patterns``).

    Attributes:
        enabled: run the model-free audit (``AuditAnswerPatterns``).
        alpha: family-wise error rate of the answer-pattern tests (Holm).
        min_cell_items: smaller cells are reported as "too few items", never flagged.
        template_words: words of an open-ended question template (no fixed prompt).
        frequent_answer_min_accuracy: most-frequent-answer accuracy that makes a cell biased.
        repeated_answer_min_items / repeated_answer_min_words: what a repeated answer is.
        drop_flags: flag codes that drop an item (``DropFlagged``); empty: none.
    """

    enabled: bool
    alpha: float
    min_cell_items: int
    template_words: int
    frequent_answer_min_accuracy: float
    repeated_answer_min_items: int
    repeated_answer_min_words: int
    drop_flags: tuple[str, ...]

    @classmethod
    def from_block(cls, block: dict[str, Any] | None = None) -> AuditConfig:
        """From a validated ``audit`` mapping; keys it lacks take the schema's defaults (keys
        of nested blocks other audits add are left to them)."""
        values = fill_block("audit", block, "")
        names = cls.__dataclass_fields__
        values = {k: v for k, v in values.items() if k in names}
        return cls(**{**values, "drop_flags": tuple(values["drop_flags"])})


def scoring_switch(
    configured: bool, turned_off: bool, off_reason: str, disabled_reason: str
) -> tuple[bool, str | None]:
    """``(enabled, skip_reason)`` of a scoring stage: off by the CLI's flag (``--no-clip``,
    ``--no-blind``: ``off_reason``), off by its config (``disabled_reason``), or on."""
    if turned_off:
        return False, off_reason
    if not configured:
        return False, disabled_reason
    return True, None


@dataclass(frozen=True)
class ClipConfig:
    """The ``clip`` block (schema: ``$defs.clip``), with ``--no-clip`` already applied.

    Attributes:
        enabled: the decision to score, taken once here: ``clip.enabled`` and not
            ``--no-clip``. Every later stage reads this and nothing else.
        skip_reason: why scoring is off (None when ``enabled``); written into records.
        model / pretrained / checkpoint: the open_clip model and its weights (``checkpoint``
            resolved against the config's folder; None when not given).
        device / precision: ``auto``, ``cpu`` or ``cuda``; ``auto``, ``fp32``, ``bf16``, ``fp16``.
        min_batch_size / max_batch_size: RunInference batch bounds.
        share_model: one model per machine, shared across worker processes.
        thresholds: category -> minimum lowest-pair score.
        keep_top_fraction: source -> fraction of its scored records to keep.
        embedding_duplicate_threshold: cosine of near-duplicate image embeddings; None: off.
    """

    enabled: bool
    skip_reason: str | None
    model: str
    pretrained: str | None
    checkpoint: str | None
    device: str
    precision: str
    min_batch_size: int
    max_batch_size: int
    share_model: bool
    thresholds: dict[str, float]
    keep_top_fraction: dict[str, float]
    embedding_duplicate_threshold: float | None

    def __post_init__(self) -> None:
        """Rules between keys that the schema cannot state (checked whether or not scoring
        is on: a config is valid or not whatever the command line says)."""
        if self.min_batch_size > self.max_batch_size:
            raise PipelineConfigError(
                f"clip.min_batch_size ({self.min_batch_size}) is larger than "
                f"clip.max_batch_size ({self.max_batch_size}); lower min_batch_size or raise "
                "max_batch_size"
            )

    @classmethod
    def from_block(
        cls, block: dict[str, Any] | None = None, base_dir: str = "", no_clip: bool = False
    ) -> ClipConfig:
        """From a validated ``clip`` mapping; keys it lacks take the schema's defaults.

        Args:
            block: the ``clip`` mapping of the build config (None: all defaults).
            base_dir: the config file's folder; a relative ``checkpoint`` is taken from there.
            no_clip: the CLI's ``--no-clip``: scoring is off whatever the config says.
        """
        values = fill_block("clip", block, base_dir)
        enabled, skip_reason = scoring_switch(
            values["enabled"], no_clip, NO_CLIP_REASON, DISABLED_REASON
        )
        return cls(
            **{
                **values,
                "enabled": enabled,
                "skip_reason": skip_reason,
                "checkpoint": values.get("checkpoint"),  # optional, no default
                "thresholds": {k: float(v) for k, v in values["thresholds"].items()},
                "keep_top_fraction": {k: float(v) for k, v in values["keep_top_fraction"].items()},
            }
        )


@dataclass(frozen=True)
class BlindConfig:
    """The ``audit.blind`` block (schema: ``$defs.audit_blind``), with ``--no-blind`` applied.

    Attributes:
        enabled: the decision to score, taken once here: ``audit.blind.enabled`` and not
            ``--no-blind``.
        skip_reason: why scoring is off (None when ``enabled``); written into records.
        model: a Hugging Face hub repo id (None: not given).
        checkpoint: a local model folder, resolved against the config's folder (None: not
            given); overrides ``model``.
        device: ``auto``, ``cpu`` or ``cuda``.
        max_batch_size: RunInference's largest batch of texts.
        max_length: most tokens of one scored text.
        margin: the gold option's lead (nats per token) that flags ``blind_answerable``.
        leakage_threshold: the answer's gain (nats per token) that flags ``answer_leakage``.
    """

    enabled: bool
    skip_reason: str | None
    model: str | None
    checkpoint: str | None
    device: str
    max_batch_size: int
    max_length: int
    margin: float
    leakage_threshold: float

    def __post_init__(self) -> None:
        if self.enabled and not (self.model or self.checkpoint):
            raise PipelineConfigError(
                "audit.blind.enabled is true but neither audit.blind.checkpoint (a local model "
                "folder) nor audit.blind.model (a hub repo id) is set; set one (`make tiny-lm` "
                "writes a tiny test model), or set audit.blind.enabled: false"
            )

    @property
    def model_name(self) -> str | None:
        """What the stage loads: the checkpoint folder, else the hub repo id."""
        return self.checkpoint or self.model

    @classmethod
    def from_block(
        cls, block: dict[str, Any] | None = None, base_dir: str = "", no_blind: bool = False
    ) -> BlindConfig:
        """From a validated ``audit.blind`` mapping; keys it lacks take the schema's defaults.

        Args:
            block: the ``audit.blind`` mapping of the build config (None: all defaults).
            base_dir: the config file's folder; a relative ``checkpoint`` is taken from there.
            no_blind: the CLI's ``--no-blind``: scoring is off whatever the config says.
        """
        values = fill_block("audit_blind", block, base_dir)
        enabled, skip_reason = scoring_switch(
            values["enabled"], no_blind, NO_BLIND_REASON, BLIND_DISABLED_REASON
        )
        return cls(
            **{
                **values,
                "enabled": enabled,
                "skip_reason": skip_reason,
                "checkpoint": values.get("checkpoint"),  # optional, no default
                "margin": float(values["margin"]),
                "leakage_threshold": float(values["leakage_threshold"]),
            }
        )


@dataclass(frozen=True)
class LabelAuditConfig:
    """The ``audit.label`` block (schema: ``$defs.audit_label``): label-error suspicion.

    Attributes:
        enabled: run :class:`pipelines.audit.label_score.ScoreLabelAgreement` and
            :class:`pipelines.audit.label_flag.FlagLabelSuspect`.
        handler: ``transformers`` (``model_dir``, ``device``) or ``openai`` (``base_url``,
            ``served_model``, ``api_key_env``, ``top_logprobs``, ``concurrency``,
            ``timeout_s``, ``max_retries``).
        threshold: flag ``label_suspect`` at a suspicion at least this.
        max_new_tokens: bound of a generated (open-ended) answer.
        min_batch_size / max_batch_size: RunInference batch bounds.
    """

    enabled: bool
    handler: str
    model_dir: str | None
    device: str
    base_url: str | None
    served_model: str | None
    api_key_env: str
    threshold: float
    max_new_tokens: int
    top_logprobs: int
    concurrency: int
    timeout_s: float
    max_retries: int
    min_batch_size: int
    max_batch_size: int

    def __post_init__(self) -> None:
        """Rules between keys that the schema cannot state."""
        if self.min_batch_size > self.max_batch_size:
            raise PipelineConfigError(
                f"audit.label.min_batch_size ({self.min_batch_size}) is larger than "
                f"audit.label.max_batch_size ({self.max_batch_size}); lower min_batch_size or "
                "raise max_batch_size"
            )
        if not self.enabled:
            return
        if self.handler == "transformers" and not self.model_dir:
            raise PipelineConfigError(
                "audit.label.handler is transformers but audit.label.model_dir is not set: "
                "name a model folder (`make tiny-vlm` writes a tiny test one), or set "
                "audit.label.enabled: false"
            )
        if self.handler == "openai" and not (self.base_url and self.served_model):
            raise PipelineConfigError(
                "audit.label.handler is openai but audit.label.base_url or "
                "audit.label.served_model is not set: give the server's URL up to /v1 and the "
                "model it serves, or set audit.label.enabled: false"
            )

    @classmethod
    def from_block(
        cls, block: dict[str, Any] | None = None, base_dir: str = ""
    ) -> LabelAuditConfig:
        """From a validated ``audit.label`` mapping; keys it lacks take the schema's defaults
        (a relative ``model_dir`` is taken from ``base_dir``, the config's folder)."""
        values = fill_block("audit_label", block, base_dir)
        return cls(
            **{
                **values,
                "model_dir": values.get("model_dir"),  # optional, no default
                "threshold": float(values["threshold"]),
                "timeout_s": float(values["timeout_s"]),
            }
        )


def check_label_audit(label: LabelAuditConfig, path: str) -> None:
    """A configured label model folder must exist, with its ``config.json``, before the
    pipeline starts (when the stage is on and runs a local model)."""
    if not (label.enabled and label.handler == "transformers" and label.model_dir):
        return
    folder = label.model_dir
    if _is_uri(folder) or not os.path.isfile(os.path.join(folder, "config.json")):
        what = "does not exist" if not os.path.exists(folder) else "is not a model folder"
        raise PipelineConfigError(
            f"{path}: audit.label.model_dir {folder} {what} (a local folder written by "
            "save_pretrained, with config.json and safetensors weights). For the tiny test "
            "model run `make tiny-vlm`; or set audit.label.enabled: false"
        )


@dataclass(frozen=True)
class BuildConfig:
    """A validated build config, every default filled in once.

    Attributes:
        path: the config file as given (messages name it so; stats.json records
            :attr:`location`, with :meth:`source_paths`).
        name: the build's name (``name:`` in the YAML, else the file stem).
        contact: who answers for the release (``contact:``), or None; the card names it.
        sources: enabled source name -> its options (defaults filled, paths resolved). These
            stay validated mappings: each reader in ``sources/`` takes its options as one.
        sha256: hash of the config file's bytes, recorded in stats.json.
        base_dir: the config file's folder; relative paths in the config start there. Readers
            name files relative to their source's root (``sources.base.source_relative``);
            ``LoadImages`` makes any absolute path left in a draft relative to this folder.
        images: the ``images`` block.
        dedupe: the ``dedupe`` block.
        limits: the ``limits`` block (read caps), given to every reader and to ``LoadImages``.
        clip: the ``clip`` block, ``--no-clip`` applied.
        audit: the ``audit`` block.
        label_audit: the ``audit.label`` block (label-error suspicion; off by default).
        blind: the ``audit.blind`` block, ``--no-blind`` applied.
    """

    path: str
    name: str
    sources: dict[str, dict[str, Any]]
    sha256: str
    base_dir: str
    images: ImagesConfig
    dedupe: DedupeConfig
    clip: ClipConfig
    limits: LimitsConfig
    audit: AuditConfig
    blind: BlindConfig
    label_audit: LabelAuditConfig = field(default_factory=LabelAuditConfig.from_block)
    contact: str | None = None

    @property
    def location(self) -> str:
        """The config file's absolute path (a URI as is), recorded in stats.json: its folder
        is where the config's relative paths start, whatever folder a later command runs
        in."""
        return self.path if _is_uri(self.path) else os.path.abspath(self.path)

    def source_paths(self) -> dict[str, dict[str, str]]:
        """Per enabled source, its path options as this build resolved them (absolute paths
        or URIs), recorded in stats.json so that ``publish`` finds the files the build read
        without reading the config again from wherever it runs."""
        return {
            name: {
                key: value
                for key, value in options.items()
                if block_properties(name).get(key, {}).get("$ref") == "#/$defs/path"
            }
            for name, options in sorted(self.sources.items())
        }


def check_utf8_paths(config: BuildConfig) -> None:
    """Every path the build records (the config's location, the sources' paths) must be
    UTF-8: stats.json, dead letters and Beam's string coders cannot hold the undecodable
    bytes of a file name (Python keeps them as lone surrogates)."""
    named = [("the config's path", config.location)] + [
        (f"sources.{name}.{key}", value)
        for name, paths in config.source_paths().items()
        for key, value in paths.items()
    ]
    for what, value in named:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise PipelineConfigError(
                f"{what} {shown} is not UTF-8 (a folder or file name holds bytes that are not "
                "UTF-8 text); rename it, or move the config and its data to a folder whose "
                "name is UTF-8"
            ) from None


def _is_uri(value: str) -> bool:
    return "://" in value


def resolve_path(value: str, base_dir: str) -> str:
    """Absolute path or URI for ``value``; relative paths are taken from ``base_dir``."""
    if _is_uri(value) or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def check_clip(clip: ClipConfig, path: str) -> None:
    """A configured local checkpoint must exist before the pipeline starts (when scoring)."""
    if clip.enabled and clip.checkpoint and not FileSystems.exists(clip.checkpoint):
        raise PipelineConfigError(
            f"{path}: clip.checkpoint {clip.checkpoint} does not exist. For the sample's tiny "
            "test model run `make tiny-clip`; for real weights see README.md (CLIP); or pass "
            "--no-clip to build without scoring"
        )


def _non_finite(value: Any, where: str = "") -> list[str]:
    """Config keys whose value is NaN or Infinity (JSON Schema cannot say a number is finite:
    ``.nan`` passes ``minimum`` because every comparison with NaN is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [where or "(top level)"]
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in _non_finite(v, f"{where}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _non_finite(v, f"{where}[{i}]")]
    return []


def check_folders(name: str, options: dict[str, Any], path: str) -> None:
    """A source option that names a folder must not name a file (local paths; whether it
    exists at all is the source's own check)."""
    for key in FOLDER_OPTIONS:
        value = options.get(key)
        if isinstance(value, str) and not _is_uri(value) and os.path.isfile(value):
            raise PipelineConfigError(
                f"{path}: sources.{name}.{key} is {value}, a file; it must be a folder "
                "(see the config reference in README.md)"
            )


def check_blind(blind: BlindConfig, path: str) -> None:
    """A configured local model folder must exist before the pipeline starts (when scoring)."""
    if blind.enabled and blind.checkpoint and not FileSystems.exists(blind.checkpoint):
        raise PipelineConfigError(
            f"{path}: audit.blind.checkpoint {blind.checkpoint} does not exist. For the "
            "sample's tiny test model run `make tiny-lm`; or set audit.blind.enabled: false, "
            "or pass --no-blind to build without blind scoring"
        )


def parse_config(
    text: str, path: str, no_clip: bool = False, no_blind: bool = False
) -> BuildConfig:
    """Validate config text; ``path`` locates relative paths and names the build.

    ``no_clip`` is the CLI's ``--no-clip``; it is decided here, once, into ``clip.enabled``
    (so the CLIP checkpoint is not checked either); ``no_blind`` likewise into
    ``audit.blind``'s.
    """
    try:
        data = yamlsafe.load(text)
    except yamlsafe.YamlRefused as exc:
        raise PipelineConfigError(f"{path} is refused: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PipelineConfigError(f"{path} is not valid YAML: {exc}") from exc
    bad = _non_finite(data)
    if bad:
        raise PipelineConfigError(
            f"{path}: {', '.join(bad)} must be a finite number, not NaN or Infinity"
        )
    issues = validate_with(config_schema(), data)
    if issues:
        listed = "\n".join(f"  {i}" for i in issues[:20])
        raise PipelineConfigError(
            f"{path} does not match schemas/config.schema.json:\n{listed}\n"
            "See the config reference in README.md."
        )
    base_dir = (
        os.path.dirname(os.path.abspath(path)) if not _is_uri(path) else path.rsplit("/", 1)[0]
    )
    sources: dict[str, dict[str, Any]] = {}
    for name, options in data["sources"].items():
        filled = fill_block(name, options, base_dir)
        if not filled["enabled"]:
            continue
        check_folders(name, filled, path)
        get_source(name).check_options(filled)
        sources[name] = filled
    if not sources:
        raise PipelineConfigError(f"{path}: every source is disabled; enable at least one")
    try:
        clip = ClipConfig.from_block(data.get("clip"), base_dir, no_clip=no_clip)
    except PipelineConfigError as exc:  # a rule between keys (ClipConfig.__post_init__)
        raise PipelineConfigError(f"{path}: {exc}") from exc
    try:
        blind = BlindConfig.from_block(
            (data.get("audit") or {}).get("blind"), base_dir, no_blind=no_blind
        )
    except PipelineConfigError as exc:  # BlindConfig.__post_init__
        raise PipelineConfigError(f"{path}: {exc}") from exc
    check_blind(blind, path)
    limits = LimitsConfig.from_block(data.get("limits"))
    check_clip(clip, path)
    try:
        label_audit = LabelAuditConfig.from_block((data.get("audit") or {}).get("label"), base_dir)
    except PipelineConfigError as exc:  # a rule between keys (LabelAuditConfig.__post_init__)
        raise PipelineConfigError(f"{path}: {exc}") from exc
    check_label_audit(label_audit, path)
    stem = os.path.splitext(os.path.basename(path))[0]
    config = BuildConfig(
        path=path,
        name=data.get("name", stem),  # not a schema default: the file stem
        sources=sources,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        base_dir=base_dir,
        images=ImagesConfig.from_block(data.get("images")),
        dedupe=DedupeConfig.from_block(data.get("dedupe")),
        clip=clip,
        limits=limits,
        blind=blind,
        audit=AuditConfig.from_block(data.get("audit")),
        contact=data.get("contact"),
        label_audit=label_audit,
    )
    check_utf8_paths(config)
    return config


def _config_hint(path: str) -> str:
    """What to try instead of a missing config: YAML files beside the given path, in the
    current folder, and the example configs of this checkout (by absolute path), closest
    names first; never the missing path itself."""
    import difflib
    import glob

    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    folders = {os.path.dirname(path) or ".", ".", "configs", checkout}
    found = {
        p
        for folder in folders
        for pattern in ("*.yaml", "*.yml")
        for p in glob.glob(os.path.join(folder, pattern))
    }
    missing = os.path.abspath(path)
    near = sorted({p for p in found if os.path.abspath(p) != missing}, key=os.path.abspath)
    if "://" in path or not near:
        return (
            f"relative paths start from the current folder ({os.getcwd()}); "
            "`mmloom fetch ... --to DIR` writes a config for the real sources"
        )
    ranked = difflib.get_close_matches(path, near, n=3, cutoff=0.0)
    return "configs found nearby: " + ", ".join(ranked)


def load_config(path: str, no_clip: bool = False, no_blind: bool = False) -> BuildConfig:
    """Read and validate the config file at ``path`` (local or a Beam filesystem URI)."""
    if not FileSystems.exists(path):
        raise PipelineConfigError(f"config file {path} does not exist; {_config_hint(path)}")
    if not _is_uri(path) and os.path.isdir(path):
        raise PipelineConfigError(
            f"config {path} is a folder; pass the YAML file, e.g. --config {path}/sample.yaml"
        )
    try:
        data = read_bytes(path, max_bytes=MAX_CONFIG_BYTES)
    except RecordError as exc:  # a FIFO, a device, a file over 1 MiB
        raise PipelineConfigError(f"cannot read config {path}: {exc.detail}") from exc
    except OSError as exc:
        raise PipelineConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineConfigError(
            f"config {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
            "UTF-8 YAML"
        ) from exc
    return parse_config(text, path, no_clip=no_clip, no_blind=no_blind)
