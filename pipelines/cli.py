"""The ``mmloom`` command line: one parser, a thin layer over the pipelines.

    mmloom build --config CONFIG --output DIR [--overwrite] [--no-clip] [Beam flags]
    mmloom show DIR [--id ID] [--jsonl] [--limit N] [--summary] [--image-uris] [--image PATH]
    mmloom verify PATH [--quick]
    mmloom fetch SOURCE... --to DIR [--split SOURCE=SPLIT]
    mmloom annotate serve|stop|push|status|pull|images ...
    mmloom publish --build DIR --output DIR --version X.Y.Z [...]
    mmloom --version

Parsing imports nothing heavy: a command's module (and with it Beam, torch, Argilla or
matplotlib) is imported only once its arguments parsed, so ``--help`` answers at once
(``bench/cli_latency.py``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import textwrap
from collections import Counter

import pipelines
from pipelines.options import (
    BUILD_DESCRIPTION,
    PUBLISH_DESCRIPTION,
    SHOW_DESCRIPTION,
    VERIFY_DESCRIPTION,
    BuildArgs,
    add_build_arguments,
    add_publish_arguments,
    add_show_arguments,
    add_verify_arguments,
)
from schemas.errors import MmloomError, find_environment_fault

# commands that parse their own (nested) arguments: the rest of the line goes to them
DELEGATED = {
    "fetch": "download the real sources, verify them and lay them out (writes a config)",
    "annotate": "human annotation in Argilla: serve, stop, push, status, pull, images",
}


def make_parser() -> argparse.ArgumentParser:
    """The whole ``mmloom`` parser (light: defining it imports no command module)."""
    parser = argparse.ArgumentParser(
        prog="mmloom",
        description="Build MMIE-style interleaved image-text benchmarks with Apache Beam.",
        epilog="`mmloom COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"mmloom {pipelines.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_build_arguments(
        sub.add_parser("build", help="build a dataset from the sources in a config",
                       description=BUILD_DESCRIPTION)
    )  # fmt: skip
    add_show_arguments(
        sub.add_parser("show", help="print a build's records, counts or one image",
                       description=SHOW_DESCRIPTION)
    )  # fmt: skip
    add_verify_arguments(
        sub.add_parser("verify", help="check a build or a release against its manifest",
                       description=VERIFY_DESCRIPTION)
    )  # fmt: skip
    for name, text in DELEGATED.items():
        delegated = sub.add_parser(name, help=text, add_help=False)
        delegated.add_argument("rest", nargs=argparse.REMAINDER)
    add_publish_arguments(
        sub.add_parser("publish", help="write a release from a build",
                       description=PUBLISH_DESCRIPTION)
    )  # fmt: skip
    return parser


def _build(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines import build

    build.run_parsed(BuildArgs.from_namespace(args), beam_args)
    return 0


def _show(args: argparse.Namespace) -> int:
    from schemas import buildio
    from schemas.buildio import read_records, read_stats, require_complete
    from schemas.jsonsafe import dumps_strict
    from schemas.store import ImageStore
    from schemas.verify import require_release

    store = ImageStore(args.build_dir)
    release = buildio.is_release(args.build_dir)
    # the quick check (file list, sizes, footer row counts; nothing hashed) before any read
    if release:
        require_release(args.build_dir)
    else:
        require_complete(args.build_dir)
    if args.image:
        try:
            if release:
                data = buildio.read_release_image(args.build_dir, args.image)
            else:
                data = store.get(args.image)
        except (ValueError, FileNotFoundError) as exc:
            raise MmloomError(str(exc)) from exc
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    if release:
        records = buildio.read_release_records(args.build_dir)
        if args.image_uris:
            raise MmloomError("a release embeds its images; use --image PATH to write one out")
    else:
        records = read_records(args.build_dir)
    if args.record_id:
        records = (r for r in records if r["id"] == args.record_id)
    if args.summary:
        by_cat: Counter = Counter()
        total = 0
        for r in records:
            by_cat[(r["category"], r["field"])] += 1
            total += 1
        kind = "release" if release else "build"
        print(f"{total} records in the {kind} {args.build_dir}")
        for (cat, field), n in sorted(by_cat.items()):
            print(f"  {cat:<4} {field:<12} {n}")
        if release:
            manifest = buildio.read_release_manifest(args.build_dir)
            publish = manifest.get("publish") or {}
            version = manifest.get("release_version", "?")
            print(
                f"release {version}: {publish.get('records', '?')} records, "
                f"{publish.get('dropped', '?')} dropped (dropped.jsonl)"
            )
            return 0
        stats = read_stats(args.build_dir)
        if stats:
            print("per source: read = written + dropped")
            for name, s in stats["sources"].items():
                dropped = sum(s["dropped"].values())
                reasons = ", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "-"
                print(f"  {name:<10} {s['read']} = {s['written']} + {dropped}  ({reasons})")
        return 0
    if args.limit is not None:
        records = itertools.islice(records, max(args.limit, 0))
    shown = 0
    out = sys.stdout
    for r in records:
        if args.image_uris:
            for im in r["images"]:
                im["uri"] = store.uri(im["path"])
        if args.jsonl:
            out.write(dumps_strict(r, ensure_ascii=False) + "\n")
        else:
            text = dumps_strict(r, ensure_ascii=False, indent=2)
            out.write(("[\n" if shown == 0 else ",\n") + textwrap.indent(text, "  "))
        shown += 1
    if args.record_id and shown == 0:
        raise MmloomError(f"no record with id {args.record_id} in {args.build_dir}")
    if not args.jsonl:
        out.write("\n]\n" if shown else "[]\n")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from schemas.verify import verify

    result = verify(args.path, full=not args.quick)
    if not result.ok:
        raise MmloomError(result.message())
    print(result.summary())
    return 0


def _needs_extra(command: str, extra: str, exc: ModuleNotFoundError) -> MmloomError:
    return MmloomError(
        f"`mmloom {command}` needs the {exc.name!r} package, which the worker install leaves "
        f"out; install the extra: pip install 'mmloom[{extra}]' (or `make venv` in a checkout)"
    )


def _publish(args: argparse.Namespace) -> int:
    try:
        from pipelines.publish.cli import run_parsed

        return run_parsed(args)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "matplotlib":
            raise _needs_extra("publish", "report", exc) from exc
        raise


def _fetch(rest: list[str]) -> int:
    from pipelines.fetch.cli import run

    return run(rest)


def _annotate(rest: list[str]) -> int:
    try:
        from annotation.cli import main as annotate_main

        return annotate_main(rest)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("argilla", "krippendorff"):
            raise _needs_extra("annotate", "annotate", exc) from exc
        raise


def main(argv: list[str] | None = None) -> int:
    """Run one ``mmloom`` command; returns the exit status (2 on a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:  # they parse the rest of the line themselves
        return _dispatch(argv[0], argparse.Namespace(command=argv[0], rest=argv[1:]), [])
    parser = make_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return 0 if not argv else 2
        if extra and args.command != "build":  # only build passes unknown flags on (to Beam)
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 2
    return _dispatch(args.command, args, extra)


class _HideEnvironmentFaultTracebacks(logging.Filter):
    """Drop the log records in which Beam reports an environment fault with its traceback
    (in-process, and relayed from worker processes): the command prints it as one message."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and find_environment_fault(exc) is not None:
            return False
        # a worker's traceback relayed as text (escaped: the class name is what stays stable)
        return "EnvironmentFault: " not in record.getMessage()


def _dispatch(command: str, args: argparse.Namespace, extra: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _HideEnvironmentFaultTracebacks) for f in handler.filters):
            handler.addFilter(_HideEnvironmentFaultTracebacks())
    try:
        if args.command == "build":
            return _build(args, extra)
        if args.command == "show":
            return _show(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "publish":
            return _publish(args)
        if args.command == "fetch":
            return _fetch(args.rest)
        return _annotate(args.rest)
    except MmloomError as exc:
        print(f"mmloom {command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mmloom show ... | head`: the reader left, nothing is wrong
        # point stdout at /dev/null so that the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, an I/O error... outside any pipeline step
        fault = find_environment_fault(exc)
        if fault is None:
            raise
        print(f"mmloom {command}: error: {fault}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
