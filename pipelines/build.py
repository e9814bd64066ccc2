"""``mmloom build``: the main Beam job.

    Read<Source> (per source) -> RestructureRecords -> LoadImages (fetch, integrity, pHash,
      write once into the image store <output>/images/) -> ValidateRecords
      -> DropDuplicateIds -> ScoreImageText (CLIP, pixels read from the store; or
      SkipClipScoring with --no-clip) -> DedupeRecords (pHash + embedding image clusters,
      frequency rule, duplicate items) -> FilterByClipScore -> WriteRecords;
      (each record checked against the Parquet column types first; what cannot be written
      is a dead letter); every DEAD output -> WriteDeadLetters; all outcomes -> ComputeStats
      (stats.json); last, once all of those are written: WriteManifest (_BUILD.json)

A folder is a build only with a valid ``_BUILD.json`` (``schemas.buildio.require_complete``).
A local build is written into a staging folder beside ``--output`` and put in place when
complete (an ``--overwrite`` build replaces the old one in one atomic exchange); on Dataflow
the job writes into ``--output`` and its manifest marks completion (README.md, "Guarantees").

Image bytes never travel through a shuffle after loading: records carry references
(``images/<sha256>.<ext>``) and metadata, and stages that need pixels read the store.

Locally (DirectRunner, the default):

    mmloom build --config configs/sample.yaml --output out/sample
    mmloom build --config configs/sample.yaml --output out/sample \\
        --direct_num_workers 2 --direct_running_mode multi_processing

On Dataflow (inputs and output on GCS; the package is staged from setup.py):

    mmloom build --config gs://BUCKET/mmloom.yaml --output gs://BUCKET/builds/v1 \\
        --runner DataflowRunner --project PROJECT --region REGION \\
        --temp_location gs://BUCKET/tmp --setup_file ./setup.py
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

import pipelines
from pipelines.clip.filter import FilterByClipScore
from pipelines.clip.settings import ClipSettings
from pipelines.clip.skip import SkipClipScoring
from pipelines.config import BuildConfig, load_config
from pipelines.dedupe.stages import DedupeRecords
from pipelines.options import BUILD_DESCRIPTION, BuildArgs, add_build_arguments
from pipelines.transforms.images import LoadImages
from pipelines.transforms.io import WriteDeadLetters, WriteManifest, WriteRecords
from pipelines.transforms.progress import ReportProgress
from pipelines.transforms.restructure import RestructureRecords
from pipelines.transforms.stats import DROPPED, IMAGES_DROPPED, READ, WRITTEN, ComputeStats
from pipelines.transforms.validate import DropDuplicateIds, ValidateRecords
from schemas.buildio import (
    BUILD_ENTRIES,
    DEAD_LETTERS_DIR,
    MANIFEST_FILE,
    RECORDS_DIR,
    STATS_FILE,
    IncompleteBuildError,
    check_build,
    entries_present,
    require_complete,
)
from schemas.deadletter import DEAD, UNIT_IMAGE
from schemas.errors import PipelineConfigError, find_environment_fault
from schemas.store import IMAGES_DIR, ImageStore
from schemas.swap import replace_dir, restore_aside
from sources import get_source

LOG = logging.getLogger("mmloom.build")


def parse_args(argv: list[str] | None) -> tuple[BuildArgs, list[str]]:
    """Split mmloom's own flags from Beam's (which go to ``PipelineOptions``)."""
    parser = argparse.ArgumentParser(prog="mmloom build", description=BUILD_DESCRIPTION)
    known, beam_args = add_build_arguments(parser).parse_known_args(argv)
    return BuildArgs.from_namespace(known), beam_args


def _is_local(path: str) -> bool:
    return "://" not in path


def _staging_prefix(output: str) -> tuple[str, str]:
    parent, name = os.path.split(os.path.abspath(output))
    return parent, f".{name}.building-"


def _clean_stale_staging(output: str) -> None:
    """Remove staging folders of builds to ``output`` whose process is gone."""
    parent, prefix = _staging_prefix(output)
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            LOG.info("removing %s, left by a build that did not finish", entry)
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _existing_build(output: str) -> tuple[list[str], list[str]]:
    """What of a build ``output`` holds: its build entries, and the problems that keep it
    from being complete (none: a complete build)."""
    present = entries_present(output)
    if not present:
        return [], []
    try:
        _, problems = check_build(output)
    except IncompleteBuildError as exc:
        problems = [str(exc)]
    return present, problems


def check_output(output: str) -> None:
    """``--output`` must be a folder (or not exist yet), never a file."""
    if _is_local(output):
        if os.path.exists(output) and not os.path.isdir(output):
            raise PipelineConfigError(
                f"--output {output} is an existing file; a build is a folder: choose a folder "
                "that does not exist yet (or an empty one)"
            )
        return
    try:
        matched = FileSystems.match([output])[0].metadata_list
    except Exception:
        matched = []
    if any(m.path.rstrip("/") == output.rstrip("/") for m in matched):
        raise PipelineConfigError(
            f"--output {output} is an existing object (a file); a build is a folder: choose "
            "another --output"
        )


def prepare_output(output: str, overwrite: bool, staged: bool = True) -> str:
    """Decide where this build writes; refuse to mix two builds in one folder.

    Args:
        staged: the build runs here and is waited for (a local runner). With a local
            ``--output`` it then writes into a staging folder beside it
            (``.<name>.building-<pid>-<token>``) that replaces ``output`` only once complete.
    Returns:
        the folder the pipeline writes into: the staging folder, or ``output`` itself (object
        stores, remote runners), where the manifest written last marks completion.
    Raises:
        PipelineConfigError: ``output`` is a file, holds a build and ``--overwrite`` was not
            given, holds files that are not a build's, or holds a complete build on an
            object store (where replacing it would copy every image).
    """
    check_output(output)
    local = _is_local(output)
    if local:
        restore_aside(output)
        _clean_stale_staging(output)
    present, problems = _existing_build(output)
    if local and os.path.isdir(output):
        allowed = {*BUILD_ENTRIES, MANIFEST_FILE + ".partial"}
        unknown = sorted(e for e in os.listdir(output) if e not in allowed)
        if unknown and (present or staged):
            raise PipelineConfigError(
                f"{output} holds files that are not part of a build ({', '.join(unknown[:5])}); "
                "a build replaces its whole folder, so choose an empty or new --output"
            )
    if present and not overwrite:
        if problems:
            raise PipelineConfigError(
                f"{output} holds an incomplete build ({problems[0]}); pass --overwrite to "
                "replace it, or choose another --output"
            )
        raise PipelineConfigError(
            f"{output} already holds a complete build; pass --overwrite to replace it (the "
            "current one stays until the new one is complete) or choose another --output"
        )
    if local and staged:
        parent, prefix = _staging_prefix(output)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
        return staging
    if present and not problems:
        raise PipelineConfigError(
            f"{output} holds a complete build, and there a build cannot be replaced in place "
            "without a moment with no build (a rename is a copy of every image): write the new "
            "build to another --output (e.g. .../v2), then delete the old folder"
        )
    if present:  # an incomplete build: nothing valid is lost
        LOG.info("deleting the incomplete build in %s", output)
        # on object stores a folder is deleted by its prefix, which ends with a slash
        FileSystems.delete(
            [
                FileSystems.join(output, e) + ("/" if not local and "." not in e else "")
                for e in sorted(present, key=lambda e: e != MANIFEST_FILE)  # the marker first
            ]
        )
    return output


def _event(kind: str, stage: str = ""):
    def fn(element: dict[str, Any]) -> tuple[str, str, str, str]:
        if kind == DROPPED:
            unit_kind = IMAGES_DROPPED if element.get("unit") == UNIT_IMAGE else DROPPED
            return (unit_kind, element["source"], element["stage"], element["reason"])
        source = element["source"] if "source" in element else element["provenance"]["source"]
        return (kind, source, stage, "")

    return fn


def embeds_bytes(draft: dict[str, Any]) -> bool:
    """Does a draft carry image bytes (parquet sources) rather than references?"""
    return any(im.get("bytes") is not None for im in draft["images"])


def build_pipeline(
    p: beam.Pipeline,
    config: BuildConfig,
    output: str,
    progress_every: float = 0.0,
) -> None:
    """Add the whole build to pipeline ``p``.

    Args:
        config: the validated config; ``config.clip.enabled`` already says whether to score
            (``--no-clip`` is applied by :func:`pipelines.config.load_config`).
        progress_every: seconds between progress lines per worker (0: none).
    """
    started = time.time()
    store = ImageStore(output)
    items, dead, restructure_dead, byteless, loaded_here, load_dead = [], [], [], [], [], []
    for name, options in config.sources.items():
        label = get_source(name).reader.__name__
        reader = get_source(name).reader(options, max_file_bytes=config.limits.max_file_bytes)
        read = p | label >> reader
        items.append(read.items)
        dead.append(read[DEAD])
        restructured = (
            read.items
            | f"{label}Progress" >> ReportProgress(label, "items", started, progress_every)
            | f"RestructureRecords{label[4:]}" >> RestructureRecords(config.sources)
        )
        restructure_dead.append(restructured[DEAD])
        # Drafts of parquet sources carry their image bytes: they are loaded right here,
        # fused with their reader (spread by file), so that no shuffle or runner buffer ever
        # holds image bytes. The other drafts name their images and are reshuffled below.
        parts = restructured.drafts | f"SplitEmbedded{label[4:]}" >> beam.Partition(
            lambda d, _n: 1 if embeds_bytes(d) else 0, 2
        )
        byteless.append(parts[0])
        here = parts[1] | f"LoadEmbeddedImages{label[4:]}" >> LoadImages(
            relative_to=config.base_dir, images=config.images, store=store, limits=config.limits
        )
        loaded_here.append(here.records)
        load_dead.append(here[DEAD])
    # every unit a reader saw is read: good items and the read-stage dead letters alike
    read_events = [i | f"ReadEvent{n}" >> beam.Map(_event(READ)) for n, i in enumerate(items)] + [
        d | f"ReadDeadEvent{n}" >> beam.Map(lambda dl: (READ, dl["source"], "", ""))
        for n, d in enumerate(dead)
    ]
    # A reader emits all items of one file from one element: reshuffle the drafts so that
    # image loading spreads over workers instead of staying fused with the file's reader.
    drafts = byteless | "FlattenDrafts" >> beam.Flatten() | "ReshuffleDrafts" >> beam.Reshuffle()
    loaded = drafts | "LoadImages" >> LoadImages(
        relative_to=config.base_dir, images=config.images, store=store, limits=config.limits
    )
    load_dead.append(loaded[DEAD])
    records = (
        (loaded.records, *loaded_here)
        | "FlattenLoaded" >> beam.Flatten()
        | "LoadProgress" >> ReportProgress("LoadImages", "records", started, progress_every)
    )
    validated = records | "ValidateRecords" >> ValidateRecords()
    unique = validated.valid | "DropDuplicateIds" >> DropDuplicateIds()

    # scoring comes before dedupe: the image embeddings it computes anyway find
    # near-duplicates that pHash misses, and they join the same duplicate clusters
    clip = ClipSettings.from_config(config.clip)
    clip_dead, embedding_edges = [], None
    if clip.enabled:
        # imported here: scoring loads torch, which a --no-clip build never needs
        from pipelines.clip.neardup import FindEmbeddingDuplicates
        from pipelines.clip.score import ScoreImageText

        scored = unique.unique | "ScoreImageText" >> ScoreImageText(clip, store=store)
        scored_records = scored["records"]
        clip_dead.append(scored[DEAD])
        if clip.embedding_duplicate_threshold is not None:
            embedding_edges = scored["image_embeddings"] | "FindEmbeddingDuplicates" >> (
                FindEmbeddingDuplicates(clip.embedding_duplicate_threshold)
            )
    else:
        scored_records = unique.unique | "SkipClipScoring" >> SkipClipScoring(clip.skip_reason)

    deduped = scored_records | "DedupeRecords" >> DedupeRecords(
        config.dedupe,
        on_bad_image=config.images.on_bad_image,
        extra_image_edges=embedding_edges,
    )
    final = deduped["records"]
    if clip.enabled:
        kept = final | "FilterByClipScore" >> FilterByClipScore(
            clip.thresholds, clip.keep_top_fraction
        )
        final = kept["records"]
        clip_dead.append(kept[DEAD])
    written = (
        final
        | "WriteProgress" >> ReportProgress("WriteRecords", "records", started, progress_every)
        | "WriteRecords" >> WriteRecords(output)
    )

    all_dead = [
        *dead,
        *restructure_dead,
        *load_dead,
        validated[DEAD],
        unique[DEAD],
        *clip_dead,
        deduped[DEAD],
        written[DEAD],
    ] | "FlattenDeadLetters" >> beam.Flatten()
    dead_files = all_dead | "WriteDeadLetters" >> WriteDeadLetters(output)

    events = [
        *read_events,
        written["rows"] | "WrittenEvent" >> beam.Map(_event(WRITTEN)),
        all_dead | "DroppedEvent" >> beam.Map(_event(DROPPED)),
    ] | "FlattenEvents" >> beam.Flatten()
    header = {
        "mmloom_version": pipelines.__version__,
        "build": config.name,
        "config": config.path,
        "config_sha256": config.sha256,
        "sources": sorted(config.sources),
    }
    stats_path = events | "ComputeStats" >> ComputeStats(
        FileSystems.join(output, STATS_FILE), header, sections=[deduped["report"]]
    )
    images_referenced = (
        written["rows"]
        | "ImagePaths" >> beam.FlatMap(lambda row: [im["path"] for im in row["images"] or []])
        | "DistinctImages" >> beam.Distinct()
        | "CountImages" >> beam.combiners.Count.Globally()
    )
    # last: the manifest marks the build complete, wherever --output points
    _ = stats_path | "WriteManifest" >> WriteManifest(
        output,
        {k: header[k] for k in ("mmloom_version", "build", "config_sha256")},
        waits_for=[written["files"], dead_files],
        images_referenced=images_referenced,
    )


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None):
    """Build a dataset. Returns the Beam ``PipelineResult`` (finished unless on Dataflow).

    Locally the build is written into a staging folder beside ``--output`` and put in place
    (replacing a previous build with ``--overwrite``) only after its manifest is written and
    checked; elsewhere the job writes into ``--output`` and its manifest, written last, marks
    the build complete.
    """
    args, beam_args = parse_args(argv)
    return run_parsed(args, beam_args, test_pipeline)


def run_parsed(args: BuildArgs, beam_args: list[str], test_pipeline: beam.Pipeline | None = None):
    """:func:`run` with the arguments already parsed (``mmloom build`` parses them first)."""
    if _is_local(args.output):  # cheap; an object store is asked in prepare_output
        check_output(args.output)
    config = load_config(args.config, no_clip=args.no_clip)
    options = PipelineOptions(beam_args)
    std = options.view_as(StandardOptions)
    if std.runner is None:
        std.runner = "DirectRunner"
    local = std.runner in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
    target = args.output
    if not options.view_as(TestOptions).dry_run:
        target = prepare_output(args.output, args.overwrite, staged=local)
    try:
        p = test_pipeline or beam.Pipeline(options=options)
        build_pipeline(
            p,
            config,
            target,
            progress_every=args.progress_every if local else 0.0,
        )
        LOG.info("building %s from %s into %s", config.name, ", ".join(config.sources), args.output)
        started = time.time()
        result = p.run()
        if local:
            result.wait_until_finish()
            if target != args.output:
                require_complete(target)
                replace_dir(target, args.output, os.path.basename(target).rsplit("-", 1)[-1])
            if test_pipeline is None:
                print_summary(args.output, time.time() - started)
    except BaseException as exc:
        if target != args.output:
            shutil.rmtree(target, ignore_errors=True)
        # a full disk or an I/O error in any step or worker: one EnvironmentFault, whatever
        # Beam wrapped it in (the CLI prints it as one message, exit status 2)
        fault = find_environment_fault(exc, (target, args.output))
        if fault is not None:
            raise fault from exc
        raise
    return result


def print_summary(output: str, seconds: float, file=None) -> None:
    """What a finished build wrote: counts, drops by reason, where everything is."""
    from schemas.buildio import read_stats

    file = file or sys.stderr
    stats = read_stats(output)
    if not stats:
        print(f"mmloom build: no stats.json in {output}", file=file)
        return
    totals = stats["totals"]
    dropped = sum(totals["dropped"].values())
    lines = [
        f"mmloom build: done in {seconds:.0f} s: read {totals['read']:,}, written "
        f"{totals['written']:,}, dropped {dropped:,}"
        + ("" if stats.get("reconciled") else " (COUNTS DO NOT RECONCILE: see stats.json)"),
    ]
    for reason, n in sorted(totals["dropped"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  dropped {n:>7,}  {reason}")
    lines += [
        f"  records:      {FileSystems.join(output, RECORDS_DIR)}/",
        f"  images:       {FileSystems.join(output, IMAGES_DIR)}/  (<sha256>.<ext>)",
        f"  dead letters: {FileSystems.join(output, DEAD_LETTERS_DIR)}/",
        f"  stats:        {FileSystems.join(output, STATS_FILE)}",
        f"  look at it:   mmloom show {output} --summary",
    ]
    print("\n".join(lines), file=file)
