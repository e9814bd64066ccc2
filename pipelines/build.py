"""``mmloom build``: the main Beam job.

    Read<Source> (per source; its items restructured into drafts by the source's hook)
      -> LoadImages (fetch, integrity, pHash, write once into the image store
      <output>/images/) -> ValidateRecords -> DropDuplicateIds -> ScoreImageText (CLIP,
      pixels read from the store; or
      SkipClipScoring with --no-clip) -> DedupeRecords (pHash + embedding image clusters,
      frequency rule, duplicate items) -> FilterByClipScore -> ScoreBlindAnswerability (a
      text-only LM, no images; or SkipBlindScoring) -> FlagBlindAnswerable -> WriteRecords;
      (each record checked against the Parquet column types first; what cannot be written
      is a dead letter); every DEAD output -> WriteDeadLetters; all outcomes -> ComputeStats
      (stats.json); last, once all of those are written: WriteManifest (_BUILD.json)

The record flow is declared as lists of :class:`Step` (:func:`source_steps` per source,
:data:`RECORD_STEPS` after image loading); :class:`BuildGraph` walks them, and gathers the
``DEAD`` output of every :class:`schemas.stage.RecordStage` it applies (readers included) for
WriteDeadLetters and ComputeStats, so no stage's dead letters are wired by hand.

A folder is a build only with a valid ``_BUILD.json`` (``schemas.buildio.require_complete``).
A local build is written into a staging folder beside ``--output`` and put in place when
complete (an ``--overwrite`` build replaces the old one in one atomic exchange); on Dataflow
the job writes into ``--output`` and its manifest marks completion (README.md, "Guarantees").
Ownership, the output's lock and the swap are ``schemas.output``'s: a build replaces only a
folder mmloom made, and a second build or publish to a local output fails while this one runs.

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
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

import pipelines
from pipelines.audit.blind_flag import FlagBlindAnswerable, SkipBlindScoring
from pipelines.audit.label_flag import FlagLabelSuspect
from pipelines.audit.stages import AuditAnswerPatterns, DropFlagged
from pipelines.clip.filter import FilterByClipScore
from pipelines.clip.settings import ClipSettings
from pipelines.clip.skip import SkipClipScoring
from pipelines.config import BuildConfig, load_config
from pipelines.dedupe.stages import DedupeRecords
from pipelines.options import BUILD_DESCRIPTION, BuildArgs, add_build_arguments
from pipelines.transforms.images import LoadImages
from pipelines.transforms.io import WriteDeadLetters, WriteManifest, WriteRecords
from pipelines.transforms.progress import ReportProgress
from pipelines.transforms.stats import DROPPED, IMAGES_DROPPED, READ, WRITTEN, ComputeStats
from pipelines.transforms.validate import DropDuplicateIds, ValidateRecords
from schemas import output as output_io
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
from schemas.stage import RecordStage, StageResult
from schemas.store import IMAGES_DIR, ImageStore
from sources import get_source

LOG = logging.getLogger("mmloom.build")


def parse_args(argv: list[str] | None) -> tuple[BuildArgs, list[str]]:
    """Split mmloom's own flags from Beam's (which go to ``PipelineOptions``)."""
    parser = argparse.ArgumentParser(
        prog="mmloom build", description=BUILD_DESCRIPTION, allow_abbrev=False
    )
    known, beam_args = add_build_arguments(parser).parse_known_args(argv)
    return BuildArgs.from_namespace(known), beam_args


def _is_local(path: str) -> bool:
    return "://" not in path


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


def check_output(output: str) -> str:
    """``--output`` must be a folder (or not exist yet), never a file; a local one must be
    UTF-8. Returns the folder to write: a local symlink is followed to its target."""
    if _is_local(output):
        return output_io.local_output(output)
    try:
        matched = FileSystems.match([output])[0].metadata_list
    except Exception:
        matched = []
    if any(m.path.rstrip("/") == output.rstrip("/") for m in matched):
        raise PipelineConfigError(
            f"--output {output} is an existing object (a file); a build is a folder: choose "
            "another --output"
        )
    return output


def config_inputs(config: BuildConfig) -> list[tuple[str, str]]:
    """The local files and folders a build reads: the config, its sources' paths (a glob
    pattern by the folder it starts in) and the CLIP checkpoint."""
    inputs = [("the config", config.path)]
    for name, options in config.sources.items():
        for key, value in options.items():
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or not _is_local(item) or not os.path.isabs(item):
                    continue  # path options are resolved to absolute paths; other strings are not
                glob_at = min((item.find(c) for c in "*?[" if c in item), default=-1)
                if glob_at >= 0:
                    item = os.path.dirname(item[:glob_at])
                inputs.append((f"the {name} source's {key}", item))
    if config.clip.checkpoint and _is_local(config.clip.checkpoint):
        inputs.append(("the CLIP checkpoint", config.clip.checkpoint))
    if config.blind.enabled and config.blind.checkpoint and _is_local(config.blind.checkpoint):
        inputs.append(("the blind-audit model", config.blind.checkpoint))
    label = config.label_audit
    if label.enabled and label.handler == "transformers" and label.model_dir:
        inputs.append(("the label-suspicion model folder", label.model_dir))
    return inputs


def prepare_output(output: str, overwrite: bool, staged: bool = True) -> str:
    """Decide where this build writes; refuse to mix two builds in one folder, and to replace
    a folder that mmloom cannot recognise as its own.

    A local ``output`` is taken as it is (:func:`run_parsed` follows a symlink first and holds
    the output's lock while calling this).

    Args:
        staged: the build runs here and is waited for (a local runner). With a local
            ``--output`` it then writes into a staging folder beside it
            (``.<name>.building-<pid>-<token>``, marked ``.mmloom-output``) that replaces
            ``output`` only once complete.
    Returns:
        the folder the pipeline writes into: the staging folder, or ``output`` itself (object
        stores, remote runners; marked ``.mmloom-output``), where the manifest written last
        marks completion.
    Raises:
        PipelineConfigError: ``output`` is a file; holds a build and ``--overwrite`` was not
            given; holds files that are not a build's; holds build files without a valid
            ``_BUILD.json`` nor mmloom's marker (not recognisably mmloom's); or holds a
            complete build on an object store (where replacing it would copy every image).
    """
    local = _is_local(output)
    if local:
        output_io.local_output(output)
        output_io.restore(output)
        output_io.clean_stale(output)
    else:
        check_output(output)
    present, problems = _existing_build(output)
    if local and os.path.isdir(output):
        allowed = {*BUILD_ENTRIES, MANIFEST_FILE + ".partial", output_io.MARKER}
        unknown = [e for e in output_io.entries(output) if e not in allowed]
        if unknown:
            raise PipelineConfigError(
                f"{output} holds files that are not part of a build "
                f"({output_io.listing(unknown)}); a build replaces its whole folder, so mmloom "
                "writes only into a new or empty folder or one holding a build it wrote: "
                "choose another --output"
            )
    mine = output_io.has_marker(output) or output_io.is_build_folder(output)
    if present and problems and not mine:
        raise PipelineConfigError(
            f"{output} holds {', '.join(present)} but no valid {MANIFEST_FILE} and no mark of a "
            f"build mmloom started ({output_io.MARKER}), so mmloom does not take it for its own "
            "and will not replace it: move those files away or choose another --output"
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
        return output_io.make_staging(output, output_io.BUILD)
    if present and not problems:
        raise PipelineConfigError(
            f"{output} holds a complete build, and there a build cannot be replaced in place "
            "without a moment with no build (a rename is a copy of every image): write the new "
            "build to another --output (e.g. .../v2), then delete the old folder"
        )
    if present:  # an incomplete build mmloom started here: nothing valid is lost
        LOG.info("deleting the incomplete build in %s", output)
        # on object stores a folder is deleted by its prefix, which ends with a slash
        FileSystems.delete(
            [
                FileSystems.join(output, e) + ("/" if not local and "." not in e else "")
                for e in sorted(present, key=lambda e: e != MANIFEST_FILE)  # the marker first
            ]
        )
    if local:
        os.makedirs(output, exist_ok=True)
    output_io.write_marker(output, output_io.BUILD)
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


@dataclass(frozen=True)
class Step:
    """One step of the build: its label, and how to make its transform from the build
    (``None``: the step is left out of this build, e.g. CLIP scoring under ``--no-clip``)."""

    label: str
    make: Callable[[BuildGraph], beam.PTransform | None]


class BuildGraph:
    """Walks lists of :class:`Step`: each step's main output feeds the next, and every
    :class:`schemas.stage.RecordStage`'s ``DEAD`` output is gathered in :attr:`dead` (so no
    stage's dead letters are wired by hand); its whole result is kept in :attr:`results`
    under its label (``results["DedupeRecords"]["report"]``)."""

    def __init__(
        self, config: BuildConfig, output: str, started: float, progress_every: float
    ) -> None:
        self.config = config
        self.output = output
        self.store = ImageStore(output)
        self.clip = ClipSettings.from_config(config.clip)
        self.started = started
        self.progress_every = progress_every
        self.dead: list[beam.PCollection] = []
        self.results: dict[str, StageResult] = {}

    def walk(self, pcoll: Any, steps: list[Step], suffix: str = "") -> beam.PCollection:
        """Apply ``steps`` in order to ``pcoll`` (labels get ``suffix``); the last main output."""
        for step in steps:
            transform = step.make(self)
            if transform is None:
                continue
            label = step.label + suffix
            out = pcoll | label >> transform
            if isinstance(transform, RecordStage):
                self.dead.append(out[DEAD])
                self.results[label] = out
                out = out[transform.main]
            pcoll = out
        return pcoll

    def progress(
        self, stage: str, unit: str, total_of: beam.PCollection | None = None
    ) -> ReportProgress:
        return ReportProgress(stage, unit, self.started, self.progress_every, total_of=total_of)

    def load_images(self) -> LoadImages:
        config = self.config
        return LoadImages(
            relative_to=config.base_dir,
            images=config.images,
            store=self.store,
            limits=config.limits,
        )

    def score(self) -> beam.PTransform | None:
        if not self.clip.enabled:
            return None
        # imported here: scoring loads torch, which a --no-clip build never needs
        from pipelines.clip.score import ScoreImageText

        return ScoreImageText(self.clip, store=self.store)

    def score_blind(self) -> beam.PTransform | None:
        if not self.config.blind.enabled:
            return None
        # imported here: scoring loads torch and transformers, which a build without the
        # blind audit never needs
        from pipelines.audit.blind import ScoreBlindAnswerability

        return ScoreBlindAnswerability(self.config.blind)

    def embedding_edges(self) -> beam.PCollection | None:
        """CLIP embedding near-duplicate edges, for DedupeRecords (None: not scored, or off)."""
        scored = self.results.get("ScoreImageText")
        threshold = self.clip.embedding_duplicate_threshold
        if scored is None or threshold is None:
            return None
        from pipelines.clip.neardup import FindEmbeddingDuplicates

        return scored["image_embeddings"] | "FindEmbeddingDuplicates" >> (
            FindEmbeddingDuplicates(threshold)
        )


def label_scoring(b: BuildGraph) -> beam.PTransform | None:
    """The label-suspicion scoring stage when ``audit.label`` is enabled (imported here: a
    build without it never imports its handlers)."""
    if not b.config.label_audit.enabled:
        return None
    from pipelines.audit.label_handler import handler_for
    from pipelines.audit.label_score import ScoreLabelAgreement

    return ScoreLabelAgreement(handler_for(b.config.label_audit), b.store)


def source_steps(name: str) -> list[Step]:
    """A source's own steps: its reader (which restructures each item into a draft with the
    source's hook), then its progress (counted as the items it read and restructured, as
    README.md's progress lines show: ``ReadVIST: 1 items so far``)."""
    reader = get_source(name).reader
    label = reader.__name__
    return [
        Step(
            label,
            lambda b: reader(b.config.sources[name], max_file_bytes=b.config.limits.max_file_bytes),
        ),
        Step(f"{label}Progress", lambda b: b.progress(label, "items")),
    ]


# The record flow after image loading, in order. Scoring comes before dedupe: the image
# embeddings it computes anyway find near-duplicates that pHash misses, and they join the
# same duplicate clusters.
RECORD_STEPS = [
    Step("ValidateRecords", lambda b: ValidateRecords()),
    Step("DropDuplicateIds", lambda b: DropDuplicateIds()),
    Step("ScoreImageText", BuildGraph.score),
    Step(
        "SkipClipScoring",
        lambda b: None if b.clip.enabled else SkipClipScoring(b.clip.skip_reason),
    ),
    Step(
        "DedupeRecords",
        lambda b: DedupeRecords(
            b.config.dedupe,
            on_bad_image=b.config.images.on_bad_image,
            extra_image_edges=b.embedding_edges(),
        ),
    ),
    Step(
        "FilterByClipScore",
        lambda b: (
            FilterByClipScore(b.clip.thresholds, b.clip.keep_top_fraction)
            if b.clip.enabled
            else None
        ),
    ),
    Step(
        "AuditAnswerPatterns",
        lambda b: AuditAnswerPatterns(b.config.audit) if b.config.audit.enabled else None,
    ),
    Step("ScoreBlindAnswerability", BuildGraph.score_blind),
    Step(
        "SkipBlindScoring",
        lambda b: None if b.config.blind.enabled else SkipBlindScoring(b.config.blind.skip_reason),
    ),
    Step(
        "FlagBlindAnswerable",
        lambda b: (
            FlagBlindAnswerable(b.config.blind.margin, b.config.blind.leakage_threshold)
            if b.config.blind.enabled
            else None
        ),
    ),
    Step("ScoreLabelAgreement", lambda b: label_scoring(b)),
    Step(
        "FlagLabelSuspect",
        lambda b: (
            FlagLabelSuspect(b.config.label_audit.threshold)
            if b.config.label_audit.enabled
            else None
        ),
    ),
    Step(
        "DropFlagged",
        lambda b: DropFlagged(b.config.audit.drop_flags) if b.config.audit.drop_flags else None,
    ),
    Step("WriteProgress", lambda b: b.progress("WriteRecords", "records")),
    Step("WriteRecords", lambda b: WriteRecords(b.output)),
]


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
    b = BuildGraph(config, output, time.time(), progress_every)
    read_events, byteless, loaded_here = [], [], []
    for name in config.sources:
        steps = source_steps(name)
        drafts = b.walk(p, steps)
        read = b.results[steps[0].label]
        suffix = steps[0].label[4:]
        # every unit a reader saw is read: its drafts and its (read and restructure) dead
        # letters alike
        read_events += [
            read.drafts | f"ReadEvent{suffix}" >> beam.Map(_event(READ)),
            read[DEAD]
            | f"ReadDeadEvent{suffix}" >> beam.Map(lambda dl: (READ, dl["source"], "", "")),
        ]
        # Drafts of parquet sources carry their image bytes: they are loaded right here,
        # fused with their reader (spread by file), so that no shuffle or runner buffer ever
        # holds image bytes. The other drafts name their images and are reshuffled below.
        parts = drafts | f"SplitEmbedded{suffix}" >> beam.Partition(
            lambda d, _n: 1 if embeds_bytes(d) else 0, 2
        )
        byteless.append(parts[0])
        loaded_here.append(
            b.walk(parts[1], [Step("LoadEmbeddedImages", BuildGraph.load_images)], suffix)
        )
    # A reader emits all items of one file from one element: reshuffle the drafts so that
    # image loading spreads over workers instead of staying fused with the file's reader.
    # (their count, known once the readers are done, is the total of LoadImages' progress)
    all_byteless = byteless | "FlattenDrafts" >> beam.Flatten()
    drafts = all_byteless | "ReshuffleDrafts" >> beam.Reshuffle()
    load_steps = [
        Step("LoadProgress", lambda b: b.progress("LoadImages", "drafts", total_of=all_byteless)),
        Step("LoadImages", BuildGraph.load_images),
    ]
    loaded = b.walk(drafts, load_steps)
    records = (loaded, *loaded_here) | "FlattenLoaded" >> beam.Flatten()
    b.walk(records, RECORD_STEPS)
    written = b.results["WriteRecords"]

    all_dead = b.dead | "FlattenDeadLetters" >> beam.Flatten()
    dead_files = all_dead | "WriteDeadLetters" >> WriteDeadLetters(output)

    events = [
        *read_events,
        written["rows"] | "WrittenEvent" >> beam.Map(_event(WRITTEN)),
        all_dead | "DroppedEvent" >> beam.Map(_event(DROPPED)),
    ] | "FlattenEvents" >> beam.Flatten()
    header = {
        "mmloom_version": pipelines.__version__,
        "build": config.name,
        "contact": config.contact,
        "config": config.location,
        "source_paths": config.source_paths(),
        "config_sha256": config.sha256,
        "sources": sorted(config.sources),
    }
    stats_path = events | "ComputeStats" >> ComputeStats(
        FileSystems.join(output, STATS_FILE),
        header,
        sections=[
            b.results[label]["report"]
            for label in ("DedupeRecords", "AuditAnswerPatterns")
            if label in b.results
        ],
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
    """:func:`run` with the arguments already parsed (``mmloom build`` parses them first).

    A local ``--output`` is locked for the whole run (``schemas.output.writer_lock``): a second
    build or publish to it fails at once. A symlinked one is followed: the build is written
    beside the link's target and replaces the target; the link stays.
    """
    local_output = _is_local(args.output)
    # cheap checks first; an object store is asked in prepare_output
    dest = check_output(args.output) if local_output else args.output
    config = load_config(args.config, no_clip=args.no_clip, no_blind=args.no_blind)
    options = PipelineOptions(beam_args)
    std = options.view_as(StandardOptions)
    if std.runner is None:
        std.runner = "DirectRunner"
    local = std.runner in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
    dry_run = options.view_as(TestOptions).dry_run
    if local:  # remote workers have their own caches (and network)
        ClipSettings.from_config(config.clip).require_weights(config.path)
        if config.blind.enabled:
            from pipelines.audit.blind_model import blind_spec, require_model

            require_model(blind_spec(config.blind), config.path)
    with contextlib.ExitStack() as locks:
        target = dest
        if local_output:
            output_io.refuse_overlap(dest, config_inputs(config))
        if not dry_run:
            if local_output:
                locks.enter_context(output_io.writer_lock(dest, output_io.BUILD))
                if os.path.abspath(args.output) != dest:  # a symlink: what earlier runs left by it
                    output_io.clean_stale(os.path.abspath(args.output))
            target = prepare_output(dest, args.overwrite, staged=local)
        try:
            p = test_pipeline or beam.Pipeline(options=options)
            build_pipeline(
                p,
                config,
                target,
                progress_every=args.progress_every if local else 0.0,
            )
            LOG.info(
                "building %s from %s into %s", config.name, ", ".join(config.sources), args.output
            )
            started = time.time()
            result = p.run()
            if local:
                result.wait_until_finish()
                if target != dest:
                    require_complete(target)
                    output_io.finish_staging(target, dest)
                if test_pipeline is None:
                    print_summary(args.output, time.time() - started)
        except BaseException as exc:
            if target != dest:
                output_io.discard_staging(target)
            # a full disk or an I/O error in any step or worker: one EnvironmentFault, whatever
            # Beam wrapped it in (the CLI prints it as one message, exit status 2)
            fault = find_environment_fault(exc, (target, dest, args.output))
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
