"""The options of ``mmloom annotate push | status | pull | images`` (light: no Argilla import).

``annotation.cli`` parses with :func:`build_parser` before it imports the round's modules,
so ``--help`` and usage errors answer at once; ``annotation.annotate_cli`` runs the command.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from annotation import images as image_store

# shared with annotation.push and annotation.agreement, which import Argilla / krippendorff
SAMPLES = ("all", "stratified", "near-threshold")
PRIORITIES = ("audit",)
DEFAULT_BATCH_SIZE = 100
DEFAULT_BOOTSTRAP = 1000
ENV_WORKSPACE = "ARGILLA_WORKSPACE"


def default_image_root() -> Path:
    """``$MMLOOM_ARGILLA_HOME/image-server`` (default ``~/.mmloom/argilla/image-server``)."""
    home = os.environ.get("MMLOOM_ARGILLA_HOME") or Path.home() / ".mmloom" / "argilla"
    return Path(home).expanduser() / "image-server"


def build_parser(prog: str = "mmloom annotate") -> argparse.ArgumentParser:
    """Argument parser for push, status, pull and images."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="One annotation round in Argilla: push records, follow the progress, pull "
        "the decisions.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dataset",
            required=True,
            help="round name; one Argilla dataset per category: NAME-sa, ...",
        )
        p.add_argument(
            "--workspace",
            default=os.environ.get(ENV_WORKSPACE),
            help=f"Argilla workspace (default ${ENV_WORKSPACE} or the key's default)",
        )
        p.add_argument(
            "--rubric", type=Path, default=None, help="rubric YAML (default annotation/rubric.yaml)"
        )

    p = sub.add_parser(
        "push",
        help="send build records to Argilla for annotation",
        description="Send a build's records (all, a stratified sample, or those near a CLIP "
        "threshold) to Argilla, one dataset per category, and serve their images. A push can "
        "be run again: it resumes, and records already on the server are skipped.",
        allow_abbrev=False,
    )
    p.add_argument("--build", required=True, help="output folder of `mmloom build`")
    common(p)
    p.add_argument(
        "--sample",
        choices=SAMPLES,
        default="all",
        help="which records: all, a stratified sample per category x field, or those whose "
        "CLIP score lies near a threshold (default all)",
    )
    p.add_argument(
        "--priority",
        choices=PRIORITIES,
        default=None,
        help="audit: records with validity-audit flags first: the sample takes every flagged "
        "record (a stratified cell is topped up with unflagged ones to its size), they are "
        "logged first, and push prints each dataset's annotation link sorted flagged first",
    )
    p.add_argument(
        "--per-cell", type=int, default=None, help="stratified: records per category x field"
    )
    p.add_argument(
        "--sizes",
        type=Path,
        default=None,
        help='stratified: YAML/JSON {"PBL": {"Health": 20, "*": 5}} ("*": the fields not '
        "named); a cell it does not cover sends --per-cell records, or none without it",
    )
    p.add_argument("--seed", type=int, default=0, help="stratified: seed of the choice")
    p.add_argument(
        "--needs-edit",
        type=Path,
        default=None,
        metavar="PULL_DIR",
        help="second round: push exactly the records of PULL_DIR/needs_edit.jsonl (with "
        "their comments) to the new round --dataset",
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[CAT=]T",
        help="near-threshold: CLIP threshold (repeatable per category)",
    )
    p.add_argument(
        "--margin", type=float, default=0.02, help="near-threshold: |min_score - T| <= margin"
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="submitted responses per record (default: the rubric's)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"records per request to Argilla (default {DEFAULT_BATCH_SIZE}, at most 500)",
    )
    p.add_argument(
        "--image-base",
        default=None,
        help="URL or gs:// / s3:// prefix holding images/<sha256>.<ext>",
    )
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="local image folder (default: the root of the mmloom image server running on "
        "--image-port, else $MMLOOM_ARGILLA_HOME/image-server)",
    )
    p.add_argument(
        "--image-port",
        type=int,
        default=image_store.DEFAULT_PORT,
        help=f"port of the local image server on 127.0.0.1 (default {image_store.DEFAULT_PORT})",
    )

    p = sub.add_parser(
        "status",
        help="progress per category, field and annotator",
        description="Print how far a round is: records, complete records and submitted "
        "responses per category and per category x field, and each annotator's submitted, "
        "discarded and draft responses.",
        allow_abbrev=False,
    )
    common(p)
    p.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="submitted responses a record needs to count as complete (default: the rubric's)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "pull",
        help="write decisions.jsonl and agreement.json",
        description="Read a round's responses from Argilla and write decisions.jsonl, "
        "needs_edit.jsonl, responses.jsonl and agreement.json, which `mmloom publish "
        "--annotations` reads.",
        allow_abbrev=False,
    )
    common(p)
    p.add_argument(
        "--output",
        required=True,
        type=Path,
        help="folder for decisions.jsonl, needs_edit.jsonl and agreement.json",
    )
    p.add_argument("--min-responses", type=int, default=None, help="default: the rubric's overlap")
    p.add_argument(
        "--rule",
        choices=("majority", "strictest"),
        default=None,
        help="how responses become a verdict (default: the rubric's decision rule)",
    )
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--previous",
        type=Path,
        default=None,
        metavar="PULL_DIR",
        help="an earlier round's pull output: carry over its decisions for records this "
        "round did not decide",
    )

    p = sub.add_parser(
        "images",
        help="stop the local image server that push started",
        description="Stop the read-only image server that push started on 127.0.0.1 (once "
        "every round that uses it is pulled).",
        allow_abbrev=False,
    )
    p.add_argument("action", choices=("stop",), help="stop: stop the image server")
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="stop only this root's server (default: every image server mmloom started)",
    )
    return parser  # fmt: skip
