"""``mmloom annotate``: dispatcher for the annotation subcommands.

mmloom annotate serve [--port 6900] [--home DIR] [--annotator NAME ...]   start a local Argilla
mmloom annotate stop [--home DIR]                                         stop exactly it
mmloom annotate users list|add NAME|reset NAME|remove NAME                annotator accounts
mmloom annotate push --build DIR --dataset NAME [...]    send records to Argilla
mmloom annotate status --dataset NAME [...]              progress per category, field, annotator
mmloom annotate pull --dataset NAME --output DIR [...]   decisions and agreement for publish
mmloom annotate images stop                              stop the local image server
"""

from __future__ import annotations

import sys

SERVER_COMMANDS = ("serve", "stop", "users")
ROUND_COMMANDS = ("push", "status", "pull", "images")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (the words after ``annotate``) to its subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ROUND_COMMANDS:
        from annotation.round_args import build_parser

        args = build_parser().parse_args(argv)  # --help and usage errors end here, at once
        from annotation.annotate_cli import run_parsed

        return run_parsed(args)
    if argv and argv[0] in SERVER_COMMANDS:
        from annotation.server.cli import main as server_main

        return server_main(argv)
    print(__doc__.strip())
    if argv and argv[0] not in ("-h", "--help"):
        print(f"\nunknown annotate command {argv[0]!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
