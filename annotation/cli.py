"""``mmloom annotate``: dispatcher for the annotation subcommands.

mmloom annotate serve [--port 6900] [--home DIR] [--annotator NAME ...]   start a local Argilla
mmloom annotate stop [--home DIR]                                         stop exactly it
mmloom annotate users list|add NAME|reset NAME|remove NAME                annotator accounts
mmloom annotate push --build DIR --dataset NAME [...]    send records to Argilla
mmloom annotate status --dataset NAME [...]              progress per category, field, annotator
mmloom annotate pull --dataset NAME --output DIR [...]   decisions and agreement for publish
mmloom annotate images stop                              stop the local image server

``mmloom annotate --help`` lists them with one line each (taken from the subcommands' own
parsers, so it never disagrees with ``mmloom annotate COMMAND --help``).
"""

from __future__ import annotations

import argparse
import sys

from schemas.errors import MmloomError

SERVER_COMMANDS = ("serve", "stop", "users")
ROUND_COMMANDS = ("push", "status", "pull", "images")
DESCRIPTION = (
    "Human annotation in Argilla: start a local server and its annotator accounts (serve, "
    "users, stop), send a build's records to it (push), follow the progress (status), and "
    "write the decisions and agreement that `mmloom publish --annotations` reads (pull)."
)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(name, one-line help) of each subcommand of ``parser``, in its order."""
    return [
        (choice.dest, choice.help or "")
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    ]


def build_parser() -> argparse.ArgumentParser:
    """The overview of ``mmloom annotate``: every subcommand with its one-line help (light: no
    Argilla import)."""
    from annotation.round_args import build_parser as round_parser
    from annotation.server.cli import build_parser as server_parser

    parser = argparse.ArgumentParser(
        prog="mmloom annotate",
        description=DESCRIPTION,
        epilog="`mmloom annotate COMMAND --help` describes each command. Push, status and pull "
        "find the server in ARGILLA_API_URL and ARGILLA_API_KEY (`source <home>/argilla.env`, "
        "written by serve).",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in _subcommands(server_parser()) + _subcommands(round_parser()):
        delegated = sub.add_parser(name, help=text, add_help=False, allow_abbrev=False)
        delegated.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def run(argv: list[str]) -> int:
    """Dispatch ``argv`` (the words after ``annotate``) to its subcommand; return its exit
    status. With no subcommand, print the overview and return 2.

    Raises:
        MmloomError: push, status or pull failed; the message says what to do.
        SystemExit: ``--help`` (0) and usage errors (2), from argparse.
    """
    if argv and argv[0] in ROUND_COMMANDS:
        from annotation.round_args import build_parser as round_parser

        args = round_parser().parse_args(argv)  # --help and usage errors end here, at once
        from annotation.annotate_cli import run_parsed

        return run_parsed(args)
    if argv and argv[0] in SERVER_COMMANDS:
        from annotation.server.cli import main as server_main

        return server_main(argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    parser.parse_args(argv)  # --help prints the overview; anything else is a usage error
    parser.error(f"unknown command {argv[0]!r}")  # not reached: argparse rejected it first
    return 2


def main(argv: list[str] | None = None) -> int:
    """``run`` as a program: an error is one message, exit status 2."""
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except MmloomError as err:
        print(f"mmloom annotate: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
