"""The ``mmloom`` command line: one parser, a thin layer over the pipelines.

    mmloom build --config CONFIG --output DIR [--overwrite] [--no-clip] [Beam flags]
    mmloom show DIR [--id ID] [--jsonl] [--limit N] [--summary] [--image-uris] [--image PATH]
                    [--dead-letters [--reason R] [--source S]]
    mmloom verify PATH [--quick]
    mmloom fetch SOURCE... --to DIR [--split SOURCE=SPLIT]
    mmloom annotate serve|stop|users|push|status|pull|images ...
    mmloom publish --build DIR --output DIR --version X.Y.Z [...]
    mmloom --version
    mmloom --debug COMMAND ...   (``--debug`` may stand anywhere before a ``--``)

Errors: a user's error (a bad flag, a missing file, a server that stopped answering, a full
disk) is one line ``mmloom COMMAND: error: ...`` that says what to do, exit status 2. Anything
else is a bug in mmloom: one line saying so, where to report it and to rerun with ``--debug``,
exit status 1. ``--debug`` adds the full traceback to either. No option may be abbreviated.
One command has a status of its own: ``fetch`` returns 3 when everything it can fetch by
script is in place and only files to fetch by hand are missing (it lists them).

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
import traceback
from collections import Counter
from collections.abc import Iterator

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
    check_beam_args,
)
from schemas.errors import MmloomError, find_environment_fault

# commands that parse their own (nested) arguments: the rest of the line goes to them
DELEGATED = {
    "fetch": "download the real sources, verify them and lay them out (writes a config)",
    "annotate": "human annotation in Argilla: serve, stop, users, push, status, pull, images",
}
DEBUG = "--debug"
# exit statuses: a user's error (one message saying what to do), and a bug in mmloom
EXIT_USER_ERROR = 2
EXIT_BUG = 1
BUG_REPORT = (
    "this is a bug in mmloom; please report it to the mmloom maintainers (the project's issue "
    "tracker) with the command you ran and what `{rerun}` prints"
)


def make_parser() -> argparse.ArgumentParser:
    """The whole ``mmloom`` parser (light: defining it imports no command module)."""
    parser = argparse.ArgumentParser(
        prog="mmloom",
        description="Build MMIE-style interleaved image-text benchmarks with Apache Beam.",
        epilog="`mmloom COMMAND --help` describes each command. A user's error is one message "
        "and exit status 2; a bug in mmloom, one line and exit status 1.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"mmloom {pipelines.__version__}")
    parser.add_argument(
        DEBUG,
        action="store_true",
        help="on an error, also print the full traceback (with every command; it may stand "
        "anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_build_arguments(
        sub.add_parser("build", help="build a dataset from the sources in a config",
                       description=BUILD_DESCRIPTION, allow_abbrev=False)
    )  # fmt: skip
    add_show_arguments(
        sub.add_parser("show", help="print a build's records, counts, dead letters or one image",
                       description=SHOW_DESCRIPTION, allow_abbrev=False)
    )  # fmt: skip
    add_verify_arguments(
        sub.add_parser("verify", help="check a build or a release against its manifest",
                       description=VERIFY_DESCRIPTION, allow_abbrev=False)
    )  # fmt: skip
    for name, text in DELEGATED.items():
        delegated = sub.add_parser(name, help=text, add_help=False, allow_abbrev=False)
        delegated.add_argument("rest", nargs=argparse.REMAINDER)
    add_publish_arguments(
        sub.add_parser("publish", help="write a release from a build",
                       description=PUBLISH_DESCRIPTION, allow_abbrev=False)
    )  # fmt: skip
    return parser


def _build(args: argparse.Namespace, beam_args: list[str]) -> int:
    check_beam_args(beam_args)  # before the build: a mistyped flag must not start a run
    from pipelines import build

    build.run_parsed(BuildArgs.from_namespace(args), beam_args)
    return 0


def _check_show_flags(args: argparse.Namespace) -> None:
    """Refuse what ``show`` cannot do before reading anything."""
    if (args.reason or args.source) and not args.dead_letters:
        raise MmloomError("--reason and --source filter dead letters: add --dead-letters")
    if args.dead_letters:
        others = [
            flag
            for flag, given in (
                ("--id", args.record_id), ("--summary", args.summary),
                ("--image", args.image), ("--image-uris", args.image_uris),
            )
            if given
        ]  # fmt: skip
        if others:
            raise MmloomError(
                f"--dead-letters prints dead letters, not records: leave out {', '.join(others)}"
            )
    if args.image and sys.stdout.isatty():
        raise MmloomError(
            "--image writes the image's bytes, which a terminal cannot show; redirect them to a "
            f"file: mmloom show {args.build_dir} --image {args.image} > image"
            f"{os.path.splitext(args.image)[1]}"
        )


def _show_dead_letters(args: argparse.Namespace, release: bool) -> int:
    """``show --dead-letters``: JSON Lines, in the order of the files (a release: of its
    ``dropped.jsonl``), filtered by ``--reason`` and ``--source``."""
    from schemas import buildio
    from schemas.jsonsafe import dumps_strict

    if release:
        if args.source:
            raise MmloomError(
                "--source: a release's dropped.jsonl names no source (its lines have stage, "
                "reason, id and detail); filter it with --reason, or show the build's dead "
                "letters"
            )
        letters: Iterator[dict] = buildio.read_release_dropped(args.build_dir)
    else:
        letters = buildio.read_dead_letters(args.build_dir)
    seen: Counter = Counter()  # (source, reason) of every letter read, for the note below
    shown = 0
    limit = None if args.limit is None else max(args.limit, 0)
    for letter in letters:
        seen[(letter.get("source"), letter.get("reason"))] += 1
        if args.reason is not None and letter.get("reason") != args.reason:
            continue
        if args.source is not None and letter.get("source") != args.source:
            continue
        if limit is not None and shown >= limit:
            break
        sys.stdout.write(dumps_strict(letter, ensure_ascii=False) + "\n")
        shown += 1
    if shown == 0 and (args.reason or args.source) and limit != 0:
        # not an error (a reason may simply not have happened), but say what is there
        there = Counter()
        for (source, reason), n in seen.items():
            if args.source is None or source == args.source:
                there[reason] += n
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(there.items())) or "none"
        sources = sorted({src for src, _ in seen if src})
        where = f" of source {args.source}" if args.source else ""
        print(
            f"mmloom show: no dead letters with reason {args.reason}{where}; reasons there"
            f"{where}: {reasons}"
            if args.reason
            else f"mmloom show: no dead letters of source {args.source}; sources with dead "
            f"letters: {', '.join(sources) or 'none'}",
            file=sys.stderr,
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from schemas import buildio
    from schemas.buildio import read_records, read_stats, require_complete
    from schemas.jsonsafe import dumps_strict
    from schemas.store import ImageStore
    from schemas.verify import require_release

    _check_show_flags(args)
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
    if args.dead_letters:
        return _show_dead_letters(args, release)
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

    def with_uris(r: dict) -> dict:
        if args.image_uris:
            for im in r["images"]:
                im["uri"] = store.uri(im["path"])
        return r

    if args.record_id:  # ids are unique in a build and in a release: one object, not a list
        record = next(records, None)
        if record is None:
            raise MmloomError(
                f"no record with id {args.record_id} in {args.build_dir}; "
                f"`mmloom show {args.build_dir} --jsonl` lists its records"
            )
        indent = None if args.jsonl else 2
        sys.stdout.write(dumps_strict(with_uris(record), ensure_ascii=False, indent=indent) + "\n")
        return 0
    if args.limit is not None:
        records = itertools.islice(records, max(args.limit, 0))
    shown = 0
    out = sys.stdout
    for r in records:
        if args.jsonl:
            out.write(dumps_strict(with_uris(r), ensure_ascii=False) + "\n")
        else:
            text = dumps_strict(with_uris(r), ensure_ascii=False, indent=2)
            out.write(("[\n" if shown == 0 else ",\n") + textwrap.indent(text, "  "))
        shown += 1
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
        from annotation.cli import run

        return run(rest)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("argilla", "krippendorff"):
            raise _needs_extra("annotate", "annotate", exc) from exc
        raise


def take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (wherever it stands before a ``--``), and whether it was
    there: the flag belongs to ``mmloom`` itself, also for the commands that parse their own
    arguments (fetch, annotate) and for build, whose leftovers go to Beam."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [word for word in argv[:end] if word != DEBUG] + argv[end:]
    return kept, len(kept) != len(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one ``mmloom`` command; returns the exit status: 0, 2 on a user error (one message
    saying what to do), 1 on a bug in mmloom (one line saying so; ``--debug`` for the
    traceback), and for ``fetch`` 3 when only files to fetch by hand are missing."""
    argv, debug = take_debug(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] in DELEGATED:  # they parse the rest of the line themselves
        namespace = argparse.Namespace(command=argv[0], rest=argv[1:])
        return _dispatch(argv[0], namespace, [], debug)
    parser = make_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            if extra:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            parser.print_help(sys.stderr)  # no command: the help, and a usage error's status
            return EXIT_USER_ERROR
        if extra and args.command != "build":  # only build passes flags on (Beam's)
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_USER_ERROR
    return _dispatch(args.command, args, extra, debug)


class _HideEnvironmentFaultTracebacks(logging.Filter):
    """Drop the log records in which Beam reports an environment fault with its traceback
    (in-process, and relayed from worker processes): the command prints it as one message."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and find_environment_fault(exc) is not None:
            return False
        # a worker's traceback relayed as text (escaped: the class name is what stays stable)
        return "EnvironmentFault: " not in record.getMessage()


def _dispatch(command: str, args: argparse.Namespace, extra: list[str], debug: bool = False) -> int:
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
        return _user_error(command, str(exc), debug)
    except BrokenPipeError:  # `mmloom show ... | head`: the reader left, nothing is wrong
        # point stdout at /dev/null so that the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as exc:  # fetch's and annotate's own parsers: --help, usage errors
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_USER_ERROR
    except KeyboardInterrupt:  # what was half-written is cleaned up by the command itself
        if debug:
            traceback.print_exc()
        print(f"mmloom {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # a full disk, an I/O error... outside any pipeline step: the machine's, not a bug
        fault = find_environment_fault(exc) if isinstance(exc, OSError) else None
        if fault is not None:
            return _user_error(command, str(fault), debug)
        return _bug(command, exc, debug)


def _user_error(command: str, message: str, debug: bool) -> int:
    """Print a user's error as one message (after the traceback with ``--debug``)."""
    if debug:
        traceback.print_exc()
    print(f"mmloom {command}: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def _bug(command: str, exc: BaseException, debug: bool) -> int:
    """Print an exception no command turned into a message: a bug in mmloom. One line (its
    first line: Beam's errors carry a worker's whole traceback as text), unless ``--debug``."""
    if debug:
        traceback.print_exc()
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 300:
        first = first[:300] + "..."
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    rerun = f"mmloom {DEBUG} {command} ..."
    tail = "the traceback is above" if debug else f"rerun it with {DEBUG} to see the traceback"
    print(
        f"mmloom {command}: internal error ({what}); {BUG_REPORT.format(rerun=rerun)}; {tail}",
        file=sys.stderr,
    )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
