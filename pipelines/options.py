"""The command-line options of ``mmloom build``, ``show``, ``verify`` and ``publish``, in one
light place.

This module imports nothing heavy (no Beam, torch, pyarrow or matplotlib), so that
``mmloom <command> --help`` answers at once: the command's module, and with it Beam or torch,
is imported only after the arguments parsed. ``pipelines.cli`` builds its parser from these
functions; ``pipelines.build.parse_args`` and ``pipelines.publish.cli.parser`` use the same
ones, so every option is defined once.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass

from schemas.errors import MmloomError

BUILD_DESCRIPTION = (
    "Build a dataset: read the sources in the config, restructure them into interleaved "
    "question/answer records, check and store the images, validate, CLIP-score, dedupe, and "
    "write records, dead letters and stats.json. Beam's own options (--runner, "
    "--direct_num_workers, --project, ...) go to Beam; any other flag is an error."
)
SHOW_DESCRIPTION = (
    "Print the records of a build or a release as JSON (streamed, in the order of the shards), "
    "one record, their counts, the dead letters (a release: its dropped.jsonl), or one image."
)
VERIFY_DESCRIPTION = (
    "Check a build (against its _BUILD.json) or a release (against its manifest.json): every "
    "listed file is there and nothing else, sizes, row counts, and the sha256 of every file; "
    "for a build, also that every image the records use is in the image store and hashes to "
    "its name. Prints one OK line (exit 0) or the problems (exit 2). show, publish and "
    "annotate push run the quick file checks themselves before reading."
)
PUBLISH_DESCRIPTION = (
    "Write a release (Parquet shards, dataset card, manifest, MMIE export, report) from a build."
)


@dataclass(frozen=True)
class BuildArgs:
    """``mmloom build``'s own options (Beam's are passed through untouched)."""

    config: str
    output: str
    overwrite: bool = False
    no_clip: bool = False
    progress_every: float = 10.0
    no_blind: bool = False

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> BuildArgs:
        return cls(ns.config, ns.output, ns.overwrite, ns.no_clip, ns.progress_every, ns.no_blind)


def add_build_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config", required=True, help="build config (YAML), e.g. configs/sample.yaml"
    )
    parser.add_argument("--output", required=True, help="build folder (local path or gs://...)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a build mmloom wrote there (it stays in place until the new one is "
        "complete); a folder mmloom did not write is never replaced",
    )
    parser.add_argument(
        "--no-clip",
        action="store_true",
        help="skip CLIP scoring and filtering (quick CPU runs); records say they were not scored",
    )
    parser.add_argument(
        "--no-blind",
        action="store_true",
        help="skip the blind-answerability audit (audit.blind); records say they were not scored",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="print progress (stage, items so far, elapsed time) at most this often per "
        "worker; 0 turns it off (default 10)",
    )
    return parser


def check_beam_args(beam_args: list[str]) -> None:
    """Refuse the flags ``mmloom build`` did not parse unless Beam itself recognises them.

    Beam only logs "Discarding unparseable args" for a flag it does not know and runs anyway
    (a mistyped ``--no-clpi`` ran CLIP). The leftovers are parsed here the way
    ``PipelineOptions.get_all_options`` parses them (every registered options class, no
    abbreviations; ``--flag value`` and ``--flag=value`` alike); whatever is left over is an
    error naming the closest flag. Imports Beam: call it only once a build is going to run.

    Raises:
        MmloomError: an unknown flag or a stray word, or a Beam option with a bad value.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class _Parser(_BeamArgumentParser):
        def error(self, message: str):  # argparse would exit; one message instead
            raise MmloomError(f"Beam option: {message}")

    parser = _Parser(prog="mmloom build", allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():  # as Beam: the last import of a class wins
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # how Beam itself collects them
    _, unknown = parser.parse_known_args(beam_args)
    if not unknown:
        return
    own = add_build_arguments(argparse.ArgumentParser(add_help=False))
    known = [o for p in (own, parser) for a in p._actions for o in a.option_strings]
    flag = next((u.split("=", 1)[0] for u in unknown if u.startswith("-")), None)
    close = difflib.get_close_matches(flag, known, n=1) if flag else []
    hint = f"; did you mean {close[0]}?" if close else ""
    raise MmloomError(
        f"unrecognized arguments: {' '.join(unknown)} (neither an option of mmloom build nor "
        f"one Beam recognises{hint}); see `mmloom build --help`"
    )


def add_show_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "build_dir",
        metavar="DIR",
        help="a build (the --output folder of `mmloom build`) or a release (of `mmloom publish`)",
    )
    parser.add_argument(
        "--id", dest="record_id", metavar="ID", help="print only this record (one JSON object)"
    )
    parser.add_argument("--jsonl", action="store_true", help="one record per line")
    parser.add_argument("--limit", type=int, default=None, help="print at most N records")
    parser.add_argument(
        "--summary", action="store_true", help="print counts per category and field instead"
    )
    parser.add_argument(
        "--image-uris",
        action="store_true",
        help="add each image's location in the build's image store (images[].uri)",
    )
    parser.add_argument(
        "--image",
        metavar="PATH",
        help="write the bytes of one stored image (images/<sha256>.<ext>) to stdout, which must "
        "be redirected to a file or a pipe (never a terminal)",
    )
    parser.add_argument(
        "--dead-letters",
        action="store_true",
        help="print the dead letters as JSON Lines instead of the records (a release: the "
        "lines of its dropped.jsonl); --limit applies",
    )
    parser.add_argument(
        "--reason", metavar="R", help="with --dead-letters: only those with this reason"
    )
    parser.add_argument(
        "--source",
        metavar="S",
        help="with --dead-letters: only those of this source (a build's; a release's "
        "dropped.jsonl names no source)",
    )
    return parser


def add_verify_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a build (the --output folder of `mmloom build`) or a release (of `mmloom publish`)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the cheap part: file list, sizes, Parquet footer row counts and (builds) "
        "that every image used is stored; nothing is hashed",
    )
    return parser


def add_publish_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # required unless --upload-only (checked by pipelines.publish.cli, one message)
    parser.add_argument("--build", help="the --output folder of `mmloom build` (required)")
    parser.add_argument("--output", help="release folder to write (required)")
    parser.add_argument("--version", help="release version X.Y.Z (required)")
    parser.add_argument(
        "--annotations",
        help="folder of `mmloom annotate pull` (decisions.jsonl, agreement.json)",
    )
    parser.add_argument(
        "--require-annotation",
        action="store_true",
        help="publish only records with an accept decision or an applied fix",
    )
    parser.add_argument(
        "--include-needs-edit",
        action="store_true",
        help="also publish records whose decision needs an edit (a fix without an applicable "
        "correction, an impossible field/subfield pair); by default they are left out "
        "(dropped.jsonl reason needs_edit); ignored with --require-annotation",
    )
    parser.add_argument(
        "--targets",
        help="YAML/JSON target counts per category x field ({PBL: {Art: 10, '*': 5}}): a "
        "seeded, stratified selection",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified selection")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a release mmloom wrote there (a folder mmloom did not write is never "
        "replaced)",
    )
    parser.add_argument(
        "--max-shard-mb",
        type=float,
        default=500,
        help="largest Parquet shard in MB (10^6 bytes) of row data (default 500)",
    )
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="upload the release to this Hugging Face dataset repo, OWNER/NAME (token from "
        "HF_TOKEN or `hf auth login`); the repo id, the token and the Hub are checked before "
        "anything is written",
    )
    parser.add_argument(
        "--upload-only",
        metavar="RELEASE",
        help="upload a release already written (checked first) to --push-to-hub, and nothing "
        "else: retries a failed upload (no --build, --output or --version)",
    )
    return parser
