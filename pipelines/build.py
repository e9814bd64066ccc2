"""``mmloom build``: the main Beam job.

    Read<Source> (per source) -> RestructureRecords -> LoadImages (fetch, integrity, pHash,
      write once into the image store <output>/images/) -> ValidateRecords
      -> DropDuplicateIds -> ScoreImageText (CLIP, pixels read from the store; or
      SkipClipScoring with --no-clip) -> DedupeRecords (pHash + embedding image clusters,
      frequency rule, duplicate items) -> FilterByClipScore -> WriteRecords;
      every DEAD output -> WriteDeadLetters; all outcomes -> ComputeStats (stats.json)

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
import sys
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
from pipelines.transforms.io import WriteDeadLetters, WriteRecords
from pipelines.transforms.progress import ReportProgress
from pipelines.transforms.restructure import RestructureRecords
from pipelines.transforms.stats import DROPPED, IMAGES_DROPPED, READ, WRITTEN, ComputeStats
from pipelines.transforms.validate import DropDuplicateIds, ValidateRecords
from schemas.buildio import DEAD_LETTERS_DIR, RECORDS_DIR, STATS_FILE
from schemas.deadletter import DEAD, UNIT_IMAGE
from schemas.errors import PipelineConfigError
from schemas.store import IMAGES_DIR, ImageStore
from sources import get_source

LOG = logging.getLogger("mmloom.build")


def parse_args(argv: list[str] | None) -> tuple[BuildArgs, list[str]]:
    """Split mmloom's own flags from Beam's (which go to ``PipelineOptions``)."""
    parser = argparse.ArgumentParser(prog="mmloom build", description=BUILD_DESCRIPTION)
    known, beam_args = add_build_arguments(parser).parse_known_args(argv)
    return BuildArgs.from_namespace(known), beam_args


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse to mix two builds in one folder unless ``--overwrite`` says to replace it.

    The image store goes too: a build's store holds exactly the images its own run wrote,
    and no partial file of an interrupted run survives.
    """
    leftovers = [
        p
        for p in (
            FileSystems.join(output, STATS_FILE),
            FileSystems.join(output, RECORDS_DIR),
            FileSystems.join(output, DEAD_LETTERS_DIR),
            FileSystems.join(output, IMAGES_DIR),
        )
        if FileSystems.exists(p)
    ]
    if leftovers and not overwrite:
        raise PipelineConfigError(
            f"{output} already holds a build ({', '.join(leftovers)}); pass --overwrite to "
            "replace it or choose another --output"
        )
    if leftovers:
        FileSystems.delete(leftovers)


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
        read = p | label >> get_source(name).reader(options)
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
            relative_to=config.base_dir, images=config.images, store=store
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
        relative_to=config.base_dir, images=config.images, store=store
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
    _ = (
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
    ] | "FlattenDeadLetters" >> beam.Flatten()
    _ = all_dead | "WriteDeadLetters" >> WriteDeadLetters(output)

    events = [
        *read_events,
        final | "WrittenEvent" >> beam.Map(_event(WRITTEN)),
        all_dead | "DroppedEvent" >> beam.Map(_event(DROPPED)),
    ] | "FlattenEvents" >> beam.Flatten()
    header = {
        "mmloom_version": pipelines.__version__,
        "build": config.name,
        "config": config.path,
        "config_sha256": config.sha256,
        "sources": sorted(config.sources),
    }
    _ = events | "ComputeStats" >> ComputeStats(
        FileSystems.join(output, STATS_FILE), header, sections=[deduped["report"]]
    )


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None):
    """Build a dataset. Returns the Beam ``PipelineResult`` (finished unless on Dataflow)."""
    args, beam_args = parse_args(argv)
    return run_parsed(args, beam_args, test_pipeline)


def run_parsed(args: BuildArgs, beam_args: list[str], test_pipeline: beam.Pipeline | None = None):
    """:func:`run` with the arguments already parsed (``mmloom build`` parses them first)."""
    config = load_config(args.config, no_clip=args.no_clip)
    options = PipelineOptions(beam_args)
    std = options.view_as(StandardOptions)
    if std.runner is None:
        std.runner = "DirectRunner"
    if not options.view_as(TestOptions).dry_run:
        prepare_output(args.output, args.overwrite)
    p = test_pipeline or beam.Pipeline(options=options)
    local = std.runner in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
    build_pipeline(
        p,
        config,
        args.output,
        progress_every=args.progress_every if local else 0.0,
    )
    LOG.info("building %s from %s into %s", config.name, ", ".join(config.sources), args.output)
    started = time.time()
    result = p.run()
    if local:
        result.wait_until_finish()
        if test_pipeline is None:
            print_summary(args.output, time.time() - started)
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
