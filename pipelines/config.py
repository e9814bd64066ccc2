"""The build config: one typed place for what ``mmloom build`` reads from YAML.

``load_config(path)`` parses the YAML, validates it against ``schemas/config.schema.json``,
fills in the schema's defaults, resolves relative paths against the config file's folder,
drops disabled sources and asks each source to check its options (paths exist). Any
problem is a :class:`PipelineConfigError` raised before a pipeline is built.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems

from schemas import load_schema
from schemas.errors import PipelineConfigError
from schemas.validation import validate_against
from sources import get_source


@dataclass(frozen=True)
class BuildConfig:
    """A validated build config.

    Attributes:
        path: the config file as given.
        name: the build's name (``name:`` in the YAML, else the file stem).
        sources: enabled source name -> its options (defaults filled, paths resolved).
        sha256: hash of the config file's bytes, recorded in stats.json.
        base_dir: the config file's folder; relative paths in the config start there, and
            local paths written into records are made relative to it again.
    """

    path: str
    name: str
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    sha256: str = ""
    base_dir: str = ""
    images: dict[str, Any] = field(default_factory=dict)
    dedupe: dict[str, Any] = field(default_factory=dict)
    clip: dict[str, Any] = field(default_factory=dict)


def _is_uri(value: str) -> bool:
    return "://" in value


def resolve_path(value: str, base_dir: str) -> str:
    """Absolute path or URI for ``value``; relative paths are taken from ``base_dir``."""
    if _is_uri(value) or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def fill_block(name: str, options: dict[str, Any] | None, base_dir: str) -> dict[str, Any]:
    """Config block ``$defs.<name>`` (a source, ``images``, ``dedupe``, ``clip``) with the
    schema's defaults filled in and its path options resolved against ``base_dir``."""
    definition = load_schema("config")["$defs"][name]
    out = dict(options or {})
    for key, prop in definition["properties"].items():
        if key not in out and "default" in prop:
            out[key] = prop["default"]
        if key in out and prop.get("$ref") == "#/$defs/path":
            out[key] = resolve_path(out[key], base_dir)
    return out


def check_clip(clip: dict[str, Any], path: str) -> None:
    """A configured local checkpoint must exist before the pipeline starts."""
    checkpoint = clip.get("checkpoint")
    if clip.get("enabled", True) and checkpoint and not FileSystems.exists(checkpoint):
        raise PipelineConfigError(
            f"{path}: clip.checkpoint {checkpoint} does not exist. For the sample's tiny test "
            "model run `make tiny-clip`; for real weights see README.md (CLIP); or pass "
            "--no-clip to build without scoring"
        )


def parse_config(text: str, path: str, clip_enabled: bool = True) -> BuildConfig:
    """Validate config text; ``path`` locates relative paths and names the build.

    ``clip_enabled=False`` (the CLI's ``--no-clip``) skips the CLIP checkpoint check.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineConfigError(f"{path} is not valid YAML: {exc}") from exc
    issues = validate_against("config", data)
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
        if not filled.get("enabled", True):
            continue
        get_source(name).check_options(filled)
        sources[name] = filled
    if not sources:
        raise PipelineConfigError(f"{path}: every source is disabled; enable at least one")
    blocks = {
        name: fill_block(name, data.get(name), base_dir) for name in ("images", "dedupe", "clip")
    }
    if clip_enabled:
        check_clip(blocks["clip"], path)
    stem = os.path.splitext(os.path.basename(path))[0]
    return BuildConfig(
        path=path,
        name=data.get("name", stem),
        sources=sources,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        base_dir=base_dir,
        **blocks,
    )


def load_config(path: str, clip_enabled: bool = True) -> BuildConfig:
    if not FileSystems.exists(path):
        raise PipelineConfigError(f"config file {path} does not exist; try configs/sample.yaml")
    with FileSystems.open(path, compression_type="uncompressed") as f:
        text = f.read().decode("utf-8")
    return parse_config(text, path, clip_enabled=clip_enabled)
