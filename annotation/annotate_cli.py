"""``mmloom annotate push | status | pull | images``: one annotation round in Argilla.

    mmloom annotate push --build DIR --dataset NAME [--sample all|stratified|near-threshold]
        [--priority audit] [--per-cell N | --sizes FILE] [--seed 0] [--threshold [CAT=]T ...]
        [--margin 0.02] [--needs-edit PULL_DIR] [--rubric FILE] [--overlap N] [--batch-size 100]
        [--workspace W] [--image-base URL | --image-root DIR --image-port 6901]
    mmloom annotate status --dataset NAME [--workspace W] [--json]
    mmloom annotate pull --dataset NAME --output DIR [--min-responses N]
        [--rule majority|strictest] [--bootstrap 1000] [--seed 0] [--previous PULL_DIR]
    mmloom annotate images stop [--image-root DIR]

The server comes from ``ARGILLA_API_URL`` and ``ARGILLA_API_KEY`` (never printed or logged;
``source <home>/argilla.env``, written by ``mmloom annotate serve``, sets both).
A second round: ``push --needs-edit PULL_DIR --dataset NEW`` sends exactly the records of
``PULL_DIR/needs_edit.jsonl`` with the earlier answers and comments; ``pull`` prints that
command complete (``push`` records each round's build and image server,
:mod:`annotation.rounds`), and ``pull --dataset NEW --previous PULL_DIR`` then writes
decisions covering both rounds.
Images reach the annotators' browsers by URL: with ``--image-base`` from a web server or bucket
you run (``images/<sha256>.<ext>`` under it must be readable); otherwise ``push`` copies the
build's images under ``--image-root`` and starts a read-only image server on 127.0.0.1, or
reuses the mmloom image server already running on ``--image-port`` (its root, when
``--image-root`` is not given).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from annotation import images as image_store
from annotation.client import ClientError, connect, credentials, install_redaction, server_lost
from annotation.pull import PullError, format_status, pull, status
from annotation.push import (
    PushError,
    push,
    read_needs_edit,
    select_records,
    selection_key,
)
from annotation.round_args import build_parser, default_image_root
from annotation.rounds import record_round, rounds_path, second_round_command
from annotation.rubric import RubricError, load_rubric
from schemas import selection
from schemas.errors import MmloomError

log = logging.getLogger("mmloom.annotate")


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
        return selection.read_sizes(str(path), "--sizes")
    except MmloomError as exc:
        raise PushError(str(exc)) from None


def _push(args: argparse.Namespace, client: Any) -> int:
    from schemas.buildio import read_records
    from schemas.store import ImageStore

    rubric = load_rubric(args.rubric)
    root = None
    if not args.image_base:
        # a server an earlier round started on this port keeps serving; its root gets this
        # round's images too (content-addressed)
        root = args.image_root or image_store.server_on_port(args.image_port)
        root = Path(root or default_image_root()).resolve()
        # before any work: a busy port must not cost a copy of the images
        image_store.check_port(root, args.image_port)
    texts = [q.name for q in rubric.questions.values() if q.kind == "text"]
    order = list(rubric.questions)
    notes = read_needs_edit(args.needs_edit, texts, order) if args.needs_edit else None
    skipped: Counter = Counter()
    keys = (selection_key(r) for r in read_records(args.build))
    if notes is not None:
        keys = (k for k in keys if k["id"] in notes)
    chosen = select_records(
        keys,
        args.sample,
        sizes=_sizes(args.sizes),
        per_cell=args.per_cell,
        seed=args.seed,
        thresholds=_thresholds(args.threshold),
        margin=args.margin,
        skipped=skipped,
        priority=args.priority,
    )
    if not chosen:
        raise PushError(
            f"--sample {args.sample} chose no records from {args.build} ({dict(skipped)})"
        )
    wanted = {k["id"] for k in chosen}
    if notes is not None:
        missing = sorted(set(notes) - wanted)
        if missing:
            raise PushError(
                f"{len(missing)} needs_edit records are not in {args.build} (e.g. {missing[0]}); "
                "pass the build the first round was pushed from"
            )
        taken = [
            name
            for name in {n.get("dataset") for n in notes.values()}
            if name and name.rsplit("-", 1)[0] == args.dataset
        ]
        if taken:
            raise PushError(
                f"--dataset {args.dataset} is the round these records came from ({taken[0]}); "
                "their responses stay there, so pass a new round name, e.g. "
                f"--dataset {args.dataset}-r2"
            )

    def chosen_records():
        # the build is streamed again each time: only the chosen ids stay in memory
        return (r for r in read_records(args.build) if r["id"] in wanted)

    if args.image_base:
        image_url = image_store.url_builder(args.image_base)
        served = {"image_base": args.image_base}
    else:
        assert root is not None
        counts = image_store.export_images(chosen_records(), root, ImageStore(args.build).get)
        log.info("images under %s: %s", root, counts)
        base = image_store.start_image_server(root, args.image_port)
        image_url = image_store.url_builder(base)
        served = {"image_root": str(root), "image_port": image_store.port_of(base)}
        print(
            f"Image server: {base} for {root} (read-only, 127.0.0.1; later rounds add their "
            "images to it); stop it once every round is pulled with "
            f"`mmloom annotate images stop --image-root {shlex.quote(str(root))}`"
        )
    report = push(
        client, chosen_records, args.dataset, rubric, image_url,
        workspace=args.workspace, overlap=args.overlap, batch_size=args.batch_size, notes=notes,
        priority=args.priority,
    )  # fmt: skip
    report.skipped.update(skipped)
    url, _ = credentials()
    build = str(Path(args.build).resolve())
    try:
        record_round(url, args.workspace, args.dataset, {"build": build, **served})
    except OSError as exc:  # the push is done; only pull's printed command loses its build
        log.warning("could not record the round in %s (%s)", rounds_path(), exc.strerror)
    print(json.dumps(report.to_json(), indent=2))
    if report.links:
        print(
            "Argilla shows each annotator the pending records in a random order of their own; "
            "send annotators these links, which sort by the metadata 'audit_flags' (descending) "
            "so the flagged items come first:"
        )
        for category, link in sorted(report.links.items()):
            print(f"  {category}: {link}")
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
        previous=args.previous,
    )  # fmt: skip
    records = report["records"]
    print(
        f"{records['decided']} decisions ({report['verdicts']}), {records['pending']} records "
        f"still pending, {report['corrected']} corrected -> {args.output / 'decisions.jsonl'}"
    )
    if report["carried_over"]:
        print(f"  {report['carried_over']} decisions carried over from {args.previous}")
    if report["needs_edit_records"]:
        url, _ = credentials()
        command, complete = second_round_command(url, args.workspace, args.dataset, args.output)
        print(
            f"  {report['needs_edit_records']} records need an edit ({report['needs_edit']}) -> "
            f"{args.output / 'needs_edit.jsonl'}; publish leaves them out. Send them to a "
            "second round (on the same servers) with:"
        )
        print(f"    {command}")
        if not complete:
            print(f"  (BUILD: the build folder that was pushed to {args.dataset})")
    for name, q in report["questions"].items():
        print(f"  {name:30s} alpha={q['alpha']} ({q['level']})  agreement={q['percent_agreement']}")
    for problem in report["problems"]:
        print(f"  problem: {problem}", file=sys.stderr)
    return 0


# what running the command again does, after the server stopped answering
_AGAIN = {
    "push": ": the push resumes, records already on the server are skipped",
    "status": "",
    "pull": ": the pull writes its files anew",
}


def main(argv: list[str] | None = None) -> int:
    """Run push, status, pull or images; return the exit status (2 and one message on an
    error)."""
    try:
        return run_parsed(build_parser().parse_args(argv))
    except MmloomError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run_parsed(args: argparse.Namespace) -> int:
    """:func:`main` with the arguments parsed (``annotation.cli`` parses them first).

    Raises:
        MmloomError: one message saying what to do (``mmloom`` prints it, exit status 2),
            among them a server that stopped answering in the middle of the command.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "argilla", "argilla.sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "images":
        if args.image_root:
            roots = [args.image_root] if image_store.stop_image_server(args.image_root) else []
        else:
            roots = image_store.stop_all_image_servers(default_image_root())
        for root in roots:
            print(f"Stopped the image server of {root}.")
        if not roots:
            print("No image server was running.")
        return 0
    with contextlib.ExitStack() as lock:
        if args.command == "push":
            from schemas.buildio import IncompleteBuildError, require_complete
            from schemas.output import reader_lock

            # the build is read under its readers' lock: no `build --overwrite` swaps it meanwhile
            lock.enter_context(reader_lock(args.build))
            try:  # before any contact with the server
                require_complete(args.build)
            except IncompleteBuildError as err:
                raise MmloomError(str(err)) from err
        url, key = "", ""
        try:
            url, key = credentials()
            install_redaction(key)
            client = connect()
            return {"push": _push, "status": _status, "pull": _pull}[args.command](args, client)
        except (
            ClientError, RubricError, PushError, PullError, image_store.ImageServerError
        ) as err:  # fmt: skip
            raise MmloomError(str(err)) from err
        except Exception as exc:  # the SDK and httpx raise many types; the key is in none
            lost = server_lost(exc, url, f"annotate {args.command}", _AGAIN[args.command])
            if lost is None:
                raise  # not the server's doing: a bug (``mmloom`` says so)
            raise MmloomError(str(lost)) from exc


if __name__ == "__main__":
    sys.exit(main())
