"""Write a release folder atomically: data shards, card, MMIE export, report, manifest.

Everything is written into a hidden temporary folder next to ``--output``
(``.<name>.publish-<pid>-<random>``, marked ``.mmloom-output``) and renamed into place only
when complete, so an interrupted publish leaves either no release or the previous one. The
output's lifecycle (ownership, locks, staging, swap) is ``schemas.output``: ``--force`` replaces
only a release mmloom wrote, never another folder; a second publish or build to the same output
fails at once while this one runs. ``--force`` swaps the new release with the previous one
atomically (``schemas.swap``: ``renameat2(RENAME_EXCHANGE)`` on
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
from dataclasses import dataclass, field
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems

import pipelines
from pipelines.publish import card, inputs, mmie_export, report, shards, summary
from schemas import output as output_io
from schemas import yamlsafe
from schemas.buildio import require_complete
from schemas.errors import MmloomError
from schemas.fs import sha256_size
from schemas.verify import check_release

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


def _folder_of(value: str) -> str:
    """The folder a source path option names: the folder itself, a file's folder, or the
    part of a glob before its first wildcard."""
    cut = min((value.find(ch) for ch in "*?[" if ch in value), default=-1)
    if cut >= 0:
        return os.path.dirname(value[:cut])
    return value if os.path.isdir(value) else os.path.dirname(value)


def _source_roots(stats: dict[str, Any], base: str) -> dict[str, list[str]]:
    """Per source, the folders of its configured paths: the roots its readers name
    provenance paths relative to (``sources.base.source_relative``).

    stats.json's ``source_paths`` holds them as the build resolved them. A build made before
    it was recorded has only the config's absolute path: its sources are read from that
    file, and only when its bytes are still the ones built (``config_sha256``). Never from
    a path relative to the folder publish runs in.
    """
    recorded = stats.get("source_paths")
    if isinstance(recorded, dict):
        options_by_source = recorded
    else:
        try:
            with open(stats["config"], "rb") as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != stats.get("config_sha256"):
                return {}
            options_by_source = (yamlsafe.load(data) or {}).get("sources") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            return {}
    roots: dict[str, list[str]] = {}
    for name, options in options_by_source.items():
        if not isinstance(options, dict):
            continue
        for value in options.values():
            if isinstance(value, str) and value and "://" not in value:
                folder = _folder_of(os.path.normpath(os.path.join(base, value)))
                if os.path.isdir(folder) and folder not in roots.get(name, []):
                    roots.setdefault(name, []).append(folder)
    return roots


def _source_checksums(records: list[dict[str, Any]], stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Checksums of the source files the build read, as named in the records' provenance.

    Provenance paths are relative to the source's root, a folder of the source's configured
    paths (``source_paths`` in stats.json; ``sources.base.source_relative``); a path not found
    there is tried against the build config's folder, which stats.json records by its
    absolute path (``config``): builds made before readers named files relative to their
    root. Neither depends on the folder publish runs in: a build whose stats.json names its
    config by a relative path (made before mmloom recorded absolute ones) has its source
    files listed as not checked. Files that
    cannot be found are listed with why. Entries name the files as the records do (relative
    paths), never by the absolute paths used to find them.
    """
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r["provenance"]["source_file"], r["provenance"]["source"])
        counts[key] = counts.get(key, 0) + 1
    config = stats.get("config")
    local = isinstance(config, str) and "://" not in config
    base = os.path.dirname(config) if local and os.path.isabs(config) else None
    roots = _source_roots(stats, base) if base is not None else {}
    out = []
    for path, source in sorted(counts):
        # names are relative to each source's root, so two sources may share one: say whose
        entry: dict[str, Any] = {"path": path, "records": counts[(path, source)], "source": source}
        if "://" in path or os.path.isabs(path):
            candidates = [path]
        elif base is not None:
            candidates = [os.path.join(root, path) for root in roots.get(source, [])]
            candidates.append(os.path.normpath(os.path.join(base, path)))
        else:
            candidates = []
        found = next((c for c in candidates if FileSystems.exists(c)), None)
        if not candidates:
            entry["status"] = (
                "not checked: stats.json does not name the build config by an absolute path "
                "(rebuild with this mmloom to record it)"
            )
        elif found is None:
            entry["status"] = "missing: the file no longer exists where the build read it"
        else:
            entry["sha256"], entry["bytes"] = sha256_size(found)
            entry["status"] = "ok"
        out.append(entry)
    return out


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _read_build(build_dir: str) -> inputs.Build:
    """Read the build once, and check that what was read is what its ``_BUILD.json`` lists
    (the caller holds the build's readers' lock, so no mmloom run swaps it meanwhile; this
    catches anything else that changed it)."""
    listed = require_complete(build_dir)
    build = inputs.read_build(build_dir)
    stats_written = (build.stats.get("totals") or {}).get("written")
    if (
        len(build.records) != listed["records"]["rows"]
        or stats_written != listed["stats"]["written"]
    ):
        raise MmloomError(
            f"the build in {build_dir} changed while it was read ({len(build.records)} records "
            f"read, its _BUILD.json lists {listed['records']['rows']}); publish again once "
            "nothing writes it"
        )
    return build


def _write_release(opts: PublishOptions, tmp: str) -> dict[str, Any]:
    build = _read_build(opts.build)
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
            if rel == output_io.MARKER:  # dropped before the release is put in place
                continue
            digest, size = sha256_size(full)
            files[rel] = {"bytes": size, "rows": rows.get(rel), "sha256": digest}
    annotation_inputs = None
    if opts.annotations:
        annotation_inputs = {}
        for fname in ("decisions.jsonl", "agreement.json", "responses.jsonl"):
            path = os.path.join(opts.annotations, fname)
            if os.path.isfile(path):
                annotation_inputs[fname] = sha256_size(path)[0]
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
            "targets_sha256": sha256_size(opts.targets)[0] if opts.targets else None,
            "seed": opts.seed,
        },
        "source_files": _source_checksums(build.records, build.stats),
        "files": dict(sorted(files.items())),
    }
    _write_text(os.path.join(tmp, "manifest.json"), summary.dumps(manifest))
    return manifest


def check_output(opts: PublishOptions) -> str:
    """The release folder ``opts.output`` names (a symlink followed to its target), once it is
    known that mmloom may write there.

    Raises:
        MmloomError: the name is not UTF-8 or is a file; the folder is (or holds, or lies
            inside) the build, or holds the annotations or targets; it holds a release and
            ``force`` was not given; it holds anything else.
    """
    output = output_io.local_output(opts.output)
    output_io.refuse_overlap(output, [("the build", opts.build)], within=True)
    output_io.refuse_overlap(
        output, [("the annotations", opts.annotations or ""), ("the targets", opts.targets or "")]
    )
    present = output_io.entries(output)
    if not present:
        return output
    manifest = output_io.read_release_manifest(output)
    if manifest is None:
        raise MmloomError(
            f"{opts.output} is not a release written by mmloom (it holds "
            f"{output_io.listing(present)}); mmloom writes a release only into a new or empty "
            "folder, or over a release it wrote: choose another --output"
        )
    if not opts.force:
        raise MmloomError(
            f"{opts.output} already exists (release {manifest.get('release_version')}); pass "
            "--force to replace it or choose another --output"
        )
    return output


def publish(opts: PublishOptions) -> dict[str, Any]:
    """Write the release described by ``opts`` and return its manifest.

    The output is locked for the whole run (a second publish or build to it fails at once),
    and the build is read under its readers' lock, so a ``build --overwrite`` cannot swap it
    while it is read: the release holds the records of the build its manifest describes.

    Raises:
        MmloomError: a bad version; an output mmloom may not write (see :func:`check_output`);
            another run writing the output; unreadable inputs.
    """
    if not VERSION_RE.match(opts.version):
        raise MmloomError(f"--version must look like X.Y.Z (e.g. 1.0.0), got {opts.version!r}")
    output = output_io.local_output(opts.output)
    with output_io.writer_lock(output, output_io.RELEASE):
        output_io.restore(output)
        output_io.clean_stale(output)
        if os.path.abspath(opts.output) != output:  # a symlink: what earlier runs left by it
            output_io.clean_stale(os.path.abspath(opts.output))
        check_output(opts)
        with output_io.reader_lock(opts.build):
            tmp = output_io.make_staging(output, output_io.RELEASE)
            try:
                manifest = _write_release(opts, tmp)
                os.chmod(tmp, 0o755)
                output_io.finish_staging(tmp, output)
            except BaseException:
                output_io.discard_staging(tmp)
                raise
    log.info("release %s written to %s", opts.version, opts.output)
    return manifest


def verify(release_dir: str) -> list[str]:
    """Problems found checking a release against its manifest, every file hashed (empty when
    it verifies); ``schemas.verify.check_release`` does the work (``mmloom verify`` too)."""
    return check_release(release_dir, full=True)[1]


# what --push-to-hub takes: OWNER/NAME (huggingface_hub's validate_repo_id checks the rest)
REPO_ID_RE = re.compile(r"^[^/]+/[^/]+$")
HUB_TIMEOUT = 10.0  # seconds the preflight waits for the Hub to answer
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
UPLOAD_TRIES = 3
RETRY_PAUSE = 2.0  # seconds before the second try; doubled each time


@dataclass(frozen=True)
class HubTarget:
    """A Hub dataset repo that answered the preflight (:func:`check_hub`).

    ``token`` is never printed: it is left out of the repr.
    """

    repo: str
    endpoint: str
    user: str
    token: str = field(repr=False)


def _hub_answer(exc: BaseException) -> int | None:
    """The HTTP status of a Hub error, or None for a transport error (no answer)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def check_hub(repo: str) -> HubTarget:
    """The preflight of ``--push-to-hub``: run before anything is written or uploaded.

    ``repo`` must be ``OWNER/NAME`` (huggingface_hub's ``validate_repo_id`` rules), a token
    must be set (``HF_TOKEN``, or the one ``hf auth login`` stored; never printed), and the Hub
    (``HF_ENDPOINT``) must answer ``whoami`` for it within :data:`HUB_TIMEOUT` seconds.

    Raises:
        MmloomError: one message for each failure: bad repo id, no token, a refused token
            (401/403), another HTTP answer, or no answer at all.
    """
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import build_hf_headers, get_session, validate_repo_id

    if not REPO_ID_RE.match(repo):
        raise MmloomError(
            f"--push-to-hub takes a dataset repo as OWNER/NAME (e.g. me/mmie-bench), got {repo!r}"
        )
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise MmloomError(f"--push-to-hub {repo!r} is not a valid Hub repo id: {exc}") from None
    token = get_token()
    if not token:
        raise MmloomError(
            "--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN (or run "
            "`hf auth login`), then run the command again"
        )
    endpoint = constants.ENDPOINT
    try:
        response = get_session().get(
            f"{endpoint}/api/whoami-v2", headers=build_hf_headers(token=token), timeout=HUB_TIMEOUT
        )
    except Exception as exc:  # DNS, refused, timeout: the Hub did not answer
        raise MmloomError(
            f"the Hugging Face Hub at {endpoint} did not answer ({type(exc).__name__}); check "
            "the network (and HF_ENDPOINT), or publish without --push-to-hub and upload later "
            "with `mmloom publish --upload-only RELEASE --push-to-hub REPO`"
        ) from None
    if response.status_code in (401, 403):
        raise MmloomError(
            f"the Hugging Face Hub refused the token (HTTP {response.status_code}): set HF_TOKEN "
            "to a valid token with write access (or run `hf auth login`), then run the command "
            "again"
        )
    if response.status_code != 200:
        raise MmloomError(
            f"the Hugging Face Hub at {endpoint} answered HTTP {response.status_code} to the "
            "token check; try again later, or publish without --push-to-hub and upload later "
            "with --upload-only"
        )
    user = str(response.json().get("name") or "?")
    return HubTarget(repo=repo, endpoint=endpoint, user=user, token=token)


def push_to_hub(
    release_dir: str,
    target: HubTarget,
    version: str,
    tries: int = UPLOAD_TRIES,
    pause: float = RETRY_PAUSE,
) -> str:
    """Upload a release folder to the Hub dataset repo of ``target`` (created if missing) and
    tag the commit ``v<version>``. Returns the commit URL.

    Transient failures (no answer, a timeout, HTTP 408/425/429/5xx) are retried, ``tries``
    times in all with growing pauses: the upload is idempotent (files already there are
    skipped by their hash; the tag is left as it is when it exists). Others (401, 403, 404,
    ...) fail at once.

    Raises:
        MmloomError: one message that says how to retry only the upload
            (``mmloom publish --upload-only``).
    """
    import time

    from huggingface_hub import HfApi

    api = HfApi(endpoint=target.endpoint, token=target.token)
    retry = (
        f"the release in {release_dir} is complete: retry only the upload with `mmloom "
        f"publish --upload-only {release_dir} --push-to-hub {target.repo}`"
    )
    for attempt in range(1, tries + 1):
        try:
            api.create_repo(target.repo, repo_type="dataset", exist_ok=True)
            info = api.upload_folder(
                repo_id=target.repo,
                repo_type="dataset",
                folder_path=release_dir,
                commit_message=f"mmloom release {version}",
            )
            api.create_tag(
                target.repo, tag=f"v{version}", repo_type="dataset", revision=info.oid,
                exist_ok=True,
            )  # fmt: skip
            return str(info.commit_url)
        except Exception as exc:
            status = _hub_answer(exc)
            answer = f"HTTP {status}" if status is not None else _in_words(exc)
            transient = status in TRANSIENT_STATUS or (status is None and _transient_io(exc))
            if not transient:
                hint = (
                    "set HF_TOKEN to a token with write access to that repo; "
                    if status in (401, 403)
                    else ""
                )
                raise MmloomError(
                    f"uploading to the Hub dataset {target.repo} failed ({answer}); {hint}{retry}"
                ) from None
            if attempt == tries:
                raise MmloomError(
                    f"uploading to the Hub dataset {target.repo} failed {tries} times "
                    f"({answer}); {retry}"
                ) from None
            log.warning("uploading to %s: %s; trying again in %.0f s", target.repo, answer, pause)
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


def _in_words(exc: BaseException) -> str:
    """An error with no HTTP status, in one short line (its type and first line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _transient_io(exc: BaseException) -> bool:
    """A transport error worth retrying: a timeout or a connection cut mid-way. A refused
    connection or a name that does not resolve is not (it fails the same way at once)."""
    name = type(exc).__name__
    if "Timeout" in name or name in ("ReadError", "WriteError", "RemoteProtocolError"):
        return True
    return isinstance(exc, (TimeoutError, ConnectionResetError))


def upload_release(release_dir: str, repo: str) -> tuple[str, str]:
    """``mmloom publish --upload-only``: check a written release (the quick check of
    ``schemas.verify.check_release``: file list, sizes, row counts) and the Hub
    (:func:`check_hub`), then upload it. Returns ``(version, commit URL)``.

    Raises:
        MmloomError: the folder is not a complete release; the Hub preflight or the upload
            failed.
    """
    manifest, problems = check_release(release_dir, full=False)
    if manifest is None or problems:
        listed = "; ".join(problems[:3]) or "no manifest.json"
        raise MmloomError(
            f"{release_dir} is not a complete release ({listed}); --upload-only uploads a "
            "folder written by `mmloom publish`: publish it again"
        )
    target = check_hub(repo)
    version = str(manifest["release_version"])
    return version, push_to_hub(release_dir, target, version)
