"""Write a release folder atomically: data shards, card, MMIE export, report, manifest.

Everything is written into a hidden temporary folder next to ``--output``
(``.<name>.publish-<pid>-<random>``) and renamed into place only when complete, so an
interrupted publish leaves either no release or the previous one. ``--force`` swaps the new
release with the previous one atomically (``schemas.swap``: ``renameat2(RENAME_EXCHANGE)`` on
Linux), so there is no moment without a release; where the system cannot exchange folders, two
renames are used and a publish killed between them leaves the previous release aside, where
the next publish to the same place restores it. Leftover temporary folders of publishes that
died are removed by the next publish to the same parent folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems

import pipelines
from pipelines.publish import card, inputs, mmie_export, report, shards, summary
from schemas.errors import MmloomError
from schemas.swap import replace_dir, restore_aside

log = logging.getLogger("mmloom.publish")

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True)
class PublishOptions:
    """What ``mmloom publish`` was asked to do (see :mod:`pipelines.publish`)."""

    build: str
    output: str
    version: str
    annotations: str | None = None
    require_annotation: bool = False
    include_needs_edit: bool = False
    targets: str | None = None
    seed: int = 0
    force: bool = False
    max_shard_bytes: int = shards.DEFAULT_MAX_SHARD_BYTES


def sha256_file(path: str) -> tuple[str, int]:
    """sha256 hex digest and size of a local file or Beam filesystem URI."""
    digest = hashlib.sha256()
    size = 0
    with FileSystems.open(path, compression_type="uncompressed") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _source_roots(config_path: str, base: str) -> dict[str, list[str]]:
    """Per source, the folders named in the build config (fallback bases for provenance paths
    that a reader wrote relative to its own root rather than to the config's folder)."""
    try:
        with open(config_path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    roots: dict[str, list[str]] = {}
    for name, options in (config.get("sources") or {}).items():
        if not isinstance(options, dict):
            continue
        for value in options.values():
            if isinstance(value, str) and "://" not in value:
                folder = os.path.normpath(os.path.join(base, value))
                if os.path.isdir(folder):
                    roots.setdefault(name, []).append(folder)
    return roots


def _source_checksums(records: list[dict[str, Any]], stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Checksums of the source files the build read, as named in the records' provenance.

    Provenance paths are relative to the build config's folder; that folder is known when the
    config named in stats.json still exists. A path not found there is tried against the
    folders the config names for that source. Files that cannot be found are listed with why.
    """
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r["provenance"]["source_file"], r["provenance"]["source"])
        counts[key] = counts.get(key, 0) + 1
    config = stats.get("config")
    base = os.path.dirname(os.path.abspath(config)) if config and os.path.isfile(config) else None
    roots = _source_roots(config, base) if base is not None else {}
    out = []
    for path, source in sorted(counts):
        entry: dict[str, Any] = {"path": path, "records": counts[(path, source)]}
        if "://" in path or os.path.isabs(path):
            candidates = [path]
        elif base is not None:
            candidates = [os.path.normpath(os.path.join(base, path))]
            candidates += [os.path.join(root, path) for root in roots.get(source, [])]
        else:
            candidates = []
        found = next((c for c in candidates if FileSystems.exists(c)), None)
        if not candidates:
            entry["status"] = "not checked: the build config named in stats.json is gone"
        elif found is None:
            entry["status"] = "missing: the file no longer exists where the build read it"
        else:
            entry["sha256"], entry["bytes"] = sha256_file(found)
            entry["status"] = "ok"
        out.append(entry)
    return out


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _clean_stale(parent: str, name: str) -> None:
    """Remove temporary folders of publishes to ``name`` whose process is gone."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.publish-(\d+)-")
    for entry in os.listdir(parent):
        m = pattern.match(entry)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            log.info("removing %s left by an interrupted publish", entry)
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _write_release(opts: PublishOptions, tmp: str) -> dict[str, Any]:
    build = inputs.read_build(opts.build)
    annotations = inputs.read_annotations(opts.annotations) if opts.annotations else None
    records, dropped = inputs.apply_decisions(
        build.records, annotations, opts.require_annotation, opts.include_needs_edit
    )
    if annotations is not None:
        dropped = annotations.rejected_lines + dropped
    targets = inputs.read_targets(opts.targets) if opts.targets else None
    records, not_selected, selection = inputs.select(records, targets, opts.seed)
    dropped += not_selected
    dropped_json = sorted(
        (d.to_json() for d in dropped),
        key=lambda d: (d["stage"], d["reason"], d["id"] or "", d["detail"]),
    )
    log.info("publishing %d of %d records", len(records), len(build.records))

    data = shards.write_shards(
        records,
        os.path.join(tmp, "data"),
        build.store,
        build.image_bytes,
        opts.max_shard_bytes,
    )
    mmie = mmie_export.export(records, os.path.join(tmp, "mmie"), build.store)
    settings = summary.build_settings(build.stats, opts.build)
    agreement = annotations.agreement if annotations else None
    stats_summary = summary.summarize(
        records, build.stats, dropped_json, selection, agreement, settings,
        annotations.tally if annotations else None,
    )  # fmt: skip
    report.write_report(stats_summary, build.stats, opts.version, os.path.join(tmp, "report"))
    shard_files = [
        (f"data/{name}", os.path.getsize(os.path.join(tmp, "data", name)), rows)
        for name, rows in data
    ]
    _write_text(
        os.path.join(tmp, "README.md"),
        card.render(
            stats_summary,
            opts.version,
            pipelines.__version__,
            shard_files,
            mmie,
            annotations is not None,
        ),
    )
    _write_text(
        os.path.join(tmp, "dropped.jsonl"),
        "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in dropped_json),
    )

    rows = {path: n for path, _, n in shard_files}
    if annotations is not None and annotations.responses:  # every answer of the round
        os.makedirs(os.path.join(tmp, "annotations"))
        shutil.copyfile(annotations.responses, os.path.join(tmp, "annotations", "responses.jsonl"))
        rows["annotations/responses.jsonl"] = annotations.n_responses
    rows["mmie/data.json"] = mmie["items"]
    rows["dropped.jsonl"] = len(dropped_json)
    files: dict[str, dict[str, Any]] = {}
    for root, _, names in os.walk(tmp):
        for fname in names:
            full = os.path.join(root, fname)
            rel = os.path.relpath(full, tmp).replace(os.sep, "/")
            digest, size = sha256_file(full)
            files[rel] = {"bytes": size, "rows": rows.get(rel), "sha256": digest}
    annotation_inputs = None
    if opts.annotations:
        annotation_inputs = {}
        for fname in ("decisions.jsonl", "agreement.json", "responses.jsonl"):
            path = os.path.join(opts.annotations, fname)
            if os.path.isfile(path):
                annotation_inputs[fname] = sha256_file(path)[0]
    manifest = {
        "release_version": opts.version,
        "mmloom_version": pipelines.__version__,
        "config_sha256": build.stats.get("config_sha256"),
        "build": {
            "name": build.stats.get("build"),
            "mmloom_version": build.stats.get("mmloom_version"),
            "records": len(build.records),
            "stats_reconciled": build.stats.get("reconciled"),
        },
        "publish": {
            "records": len(records),
            "dropped": len(dropped_json),
            "require_annotation": opts.require_annotation,
            "include_needs_edit": opts.include_needs_edit,
            "annotations_sha256": annotation_inputs,
            "targets_sha256": sha256_file(opts.targets)[0] if opts.targets else None,
            "seed": opts.seed,
        },
        "source_files": _source_checksums(build.records, build.stats),
        "files": dict(sorted(files.items())),
    }
    _write_text(os.path.join(tmp, "manifest.json"), summary.dumps(manifest))
    return manifest


def publish(opts: PublishOptions) -> dict[str, Any]:
    """Write the release described by ``opts`` and return its manifest.

    Raises:
        MmloomError: a bad version, an existing release without ``force``, unreadable inputs.
    """
    if not VERSION_RE.match(opts.version):
        raise MmloomError(f"--version must look like X.Y.Z (e.g. 1.0.0), got {opts.version!r}")
    output = os.path.abspath(opts.output)
    parent, name = os.path.dirname(output), os.path.basename(output)
    if os.path.exists(output) and not opts.force:
        existing = ""
        manifest_path = os.path.join(output, "manifest.json")
        if os.path.isfile(manifest_path):
            with open(manifest_path, encoding="utf-8") as f:
                existing = f" (release {json.load(f).get('release_version')})"
        raise MmloomError(
            f"{output} already exists{existing}; pass --force to replace it or choose another "
            "--output"
        )
    os.makedirs(parent, exist_ok=True)
    if restore_aside(output):
        log.info("restored the previous release %s, left aside by an interrupted publish", output)
    _clean_stale(parent, name)
    tmp = tempfile.mkdtemp(prefix=f".{name}.publish-{os.getpid()}-", dir=parent)
    try:
        manifest = _write_release(opts, tmp)
        os.chmod(tmp, 0o755)
        replace_dir(tmp, output, os.path.basename(tmp).rsplit("-", 1)[-1])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("release %s written to %s", opts.version, output)
    return manifest


def verify(release_dir: str) -> list[str]:
    """Problems found checking a release against its manifest (empty when it verifies)."""
    with open(os.path.join(release_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    problems = []
    listed = set(manifest["files"])
    for root, _, names in os.walk(release_dir):
        for fname in names:
            rel = os.path.relpath(os.path.join(root, fname), release_dir).replace(os.sep, "/")
            if rel != "manifest.json" and rel not in listed:
                problems.append(f"{rel}: not in the manifest")
    for rel, entry in manifest["files"].items():
        path = os.path.join(release_dir, rel)
        if not os.path.isfile(path):
            problems.append(f"{rel}: missing")
            continue
        digest, size = sha256_file(path)
        if (digest, size) != (entry["sha256"], entry["bytes"]):
            problems.append(f"{rel}: checksum or size differs from the manifest")
    return problems


def push_to_hub(release_dir: str, repo: str, version: str) -> str:
    """Upload a release folder to the Hugging Face dataset repo ``repo`` and tag it.

    The token comes from the environment (``HF_TOKEN``) or a ``huggingface-cli login``; it is
    never read, printed or stored here. Returns the commit URL.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=release_dir,
            commit_message=f"mmloom release {version}",
        )
        api.create_tag(repo, tag=f"v{version}", repo_type="dataset", revision=info.oid)
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", "?")
        raise MmloomError(
            f"pushing to the Hub dataset {repo} failed (HTTP {status}); set HF_TOKEN to a token "
            "with write access to that repo (or run `huggingface-cli login`) and try again"
        ) from None
    return str(info.commit_url)
