"""``mmloom annotate push | status | pull | images``: one annotation round in Argilla.

    mmloom annotate push --build DIR --dataset NAME [--sample all|stratified|near-threshold]
        [--per-cell N | --sizes FILE] [--seed 0] [--threshold [CAT=]T ...] [--margin 0.02]
        [--rubric FILE] [--overlap N] [--batch-size 100] [--workspace W]
        [--image-base URL | --image-root DIR --image-port 6901]
    mmloom annotate status --dataset NAME [--workspace W] [--json]
    mmloom annotate pull --dataset NAME --output DIR [--min-responses N]
        [--rule majority|strictest] [--bootstrap 1000] [--seed 0]
    mmloom annotate images stop [--image-root DIR]

The server comes from ``ARGILLA_API_URL`` and ``ARGILLA_API_KEY`` (never printed or logged).
Images reach the annotators' browsers by URL: with ``--image-base`` from a web server or bucket
you run (``images/<sha256>.<ext>`` under it must be readable); otherwise ``push`` copies the
build's images under ``--image-root`` and starts a read-only image server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from annotation import images as image_store
from annotation.agreement import DEFAULT_BOOTSTRAP
from annotation.client import ClientError, connect, credentials, install_redaction
from annotation.pull import PullError, format_status, pull, status
from annotation.push import (
    DEFAULT_BATCH_SIZE,
    SAMPLES,
    PushError,
    push,
    select_records,
    selection_key,
)
from annotation.rubric import RubricError, load_rubric

log = logging.getLogger("mmloom.annotate")
ENV_WORKSPACE = "ARGILLA_WORKSPACE"


def default_image_root() -> Path:
    """``$MMLOOM_ARGILLA_HOME/image-server`` (default ``~/.mmloom/argilla/image-server``)."""
    home = os.environ.get("MMLOOM_ARGILLA_HOME") or Path.home() / ".mmloom" / "argilla"
    return Path(home).expanduser() / "image-server"


def build_parser(prog: str = "mmloom annotate") -> argparse.ArgumentParser:
    """Argument parser for push, status, pull and images."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
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

    p = sub.add_parser("push", help="send build records to Argilla for annotation")
    p.add_argument("--build", required=True, help="output folder of `mmloom build`")
    common(p)
    p.add_argument("--sample", choices=SAMPLES, default="all")
    p.add_argument(
        "--per-cell", type=int, default=None, help="stratified: records per category x field"
    )
    p.add_argument(
        "--sizes",
        type=Path,
        default=None,
        help='stratified: YAML/JSON {"PBL": {"Health": 20, "*": 5}}',
    )
    p.add_argument("--seed", type=int, default=0, help="stratified: seed of the choice")
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
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument(
        "--image-base",
        default=None,
        help="URL or gs:// / s3:// prefix holding images/<sha256>.<ext>",
    )
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="local image folder (default $MMLOOM_ARGILLA_HOME/image-server)",
    )
    p.add_argument("--image-port", type=int, default=image_store.DEFAULT_PORT)

    p = sub.add_parser("status", help="progress per category, field and annotator")
    common(p)
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("pull", help="write decisions.jsonl and agreement.json")
    common(p)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--min-responses", type=int, default=None, help="default: the rubric's overlap")
    p.add_argument("--rule", choices=("majority", "strictest"), default=None)
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    p = sub.add_parser("images", help="manage the local image server")
    p.add_argument("action", choices=("stop",))
    p.add_argument("--image-root", type=Path, default=None)
    return parser  # fmt: skip


def _thresholds(values: list[str]) -> dict[str, float]:
    out = {}
    for value in values:
        cat, _, number = value.rpartition("=")
        try:
            out[cat or "*"] = float(number)
        except ValueError:
            raise PushError(f"--threshold {value!r}: want a number or CATEGORY=NUMBER") from None
    return out


def _sizes(path: Path | None) -> dict[str, dict[str, int]] | None:
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PushError(f"cannot read --sizes {path}: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(n, int) and n >= 0 for n in v.values())
        for v in data.values()
    ):
        raise PushError(
            f"--sizes {path} must map category -> field -> count, "
            '(e.g. {"PBL": {"Health": 20, "*": 5}})'
        )
    return data


def _push(args: argparse.Namespace, client: Any) -> int:
    from schemas.buildio import read_records
    from schemas.store import ImageStore

    rubric = load_rubric(args.rubric)
    skipped: Counter = Counter()
    chosen = select_records(
        (selection_key(r) for r in read_records(args.build)),
        args.sample,
        sizes=_sizes(args.sizes),
        per_cell=args.per_cell,
        seed=args.seed,
        thresholds=_thresholds(args.threshold),
        margin=args.margin,
        skipped=skipped,
    )
    if not chosen:
        raise PushError(
            f"--sample {args.sample} chose no records from {args.build} ({dict(skipped)})"
        )
    wanted = {k["id"] for k in chosen}

    def chosen_records():
        # the build is streamed again each time: only the chosen ids stay in memory
        return (r for r in read_records(args.build) if r["id"] in wanted)

    if args.image_base:
        image_url = image_store.url_builder(args.image_base)
    else:
        root = args.image_root or default_image_root()
        counts = image_store.export_images(chosen_records(), root, ImageStore(args.build).get)
        log.info("images under %s: %s", root, counts)
        base = image_store.start_image_server(root, args.image_port)
        image_url = image_store.url_builder(base)
        print(
            f"Image server: {base} (read-only, 127.0.0.1); stop it with "
            f"`mmloom annotate images stop --image-root {root}`"
        )
    report = push(
        client, chosen_records, args.dataset, rubric, image_url,
        workspace=args.workspace, overlap=args.overlap, batch_size=args.batch_size,
    )  # fmt: skip
    report.skipped.update(skipped)
    print(json.dumps(report.to_json(), indent=2))
    return 0


def _status(args: argparse.Namespace, client: Any) -> int:
    rubric = load_rubric(args.rubric)
    report = status(client, args.dataset, args.workspace, overlap=args.overlap or rubric.overlap)
    print(json.dumps(report, indent=2) if args.json else format_status(report))
    return 0


def _pull(args: argparse.Namespace, client: Any) -> int:
    rubric = load_rubric(args.rubric)
    report = pull(
        client, args.dataset, rubric, args.output, workspace=args.workspace,
        min_responses=args.min_responses, rule=args.rule, n_boot=args.bootstrap, seed=args.seed,
    )  # fmt: skip
    records = report["records"]
    print(
        f"{records['decided']} decisions ({report['verdicts']}), {records['pending']} records "
        f"still pending, {report['corrected']} corrected -> {args.output / 'decisions.jsonl'}"
    )
    for name, q in report["questions"].items():
        print(f"  {name:30s} alpha={q['alpha']} ({q['level']})  agreement={q['percent_agreement']}")
    for problem in report["problems"]:
        print(f"  problem: {problem}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run push, status, pull or images; return the exit status."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "argilla", "argilla.sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "images":
        stopped = image_store.stop_image_server(args.image_root or default_image_root())
        print("Stopped the image server." if stopped else "No image server was running.")
        return 0
    if args.command == "push":
        from schemas.buildio import IncompleteBuildError, require_complete

        try:  # before any contact with the server
            require_complete(args.build)
        except IncompleteBuildError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    try:
        _, key = credentials()
        install_redaction(key)
        client = connect()
        return {"push": _push, "status": _status, "pull": _pull}[args.command](args, client)
    except (ClientError, RubricError, PushError, PullError, image_store.ImageServerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
