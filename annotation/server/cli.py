"""``mmloom annotate serve | stop | users``: a local Argilla server with no Elasticsearch.

    mmloom annotate serve [--port 6900] [--home DIR] [--annotator NAME ...] [--workspace W]
    mmloom annotate stop [--home DIR]
    mmloom annotate users list|add NAME|reset NAME|remove NAME [--home DIR] [--workspace W]

``serve`` installs argilla-server 2.8 into its own venv on first run, starts Redis unless
``ARGILLA_REDIS_URL`` answers, runs the migrations, creates the owner account (and any
``--annotator`` accounts), starts the server on 127.0.0.1 with mmloom's SQL search engine,
and returns once the server answers. The owner's password and API key come from
``MMLOOM_ARGILLA_OWNER_PASSWORD`` / ``MMLOOM_ARGILLA_OWNER_API_KEY`` (username:
``MMLOOM_ARGILLA_OWNER_USERNAME``, default ``owner``); missing ones are generated when the
account is created. Clients then use ``ARGILLA_API_URL`` and ``ARGILLA_API_KEY``: whenever
serve knows the owner's key (from the environment, or because it generated it), it writes
both to ``<home>/argilla.env`` (mode 0600) and prints ``source <home>/argilla.env``.
Generated passwords go to ``<home>/passwords/<name>.txt`` (mode 0600); no secret is printed.
``stop`` stops exactly the processes that ``serve`` recorded. ``users`` manages annotators on
the running server (:mod:`annotation.server.users`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from annotation.envfile import ENV_FILE, write_env_file
from annotation.server import runtime, users
from annotation.server.install import InstallError
from schemas.errors import MmloomError


def build_parser(prog: str = "mmloom annotate") -> argparse.ArgumentParser:
    """Argument parser for ``serve`` and ``stop``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local Argilla server with no Elasticsearch: start it, stop it, manage "
        "its annotators.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser(
        "serve",
        help="start a local Argilla (SQLite + Redis, no Elasticsearch)",
        description="Start a local Argilla on 127.0.0.1 (installed into its own venv on first "
        "run; SQLite, Redis and mmloom's SQL search engine, no Elasticsearch) with an owner "
        "and any --annotator accounts, and write HOME/argilla.env for the clients.",
        allow_abbrev=False,
    )
    p_serve.add_argument(
        "--port",
        type=int,
        default=runtime.DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {runtime.DEFAULT_PORT})",
    )
    p_serve.add_argument(
        "--home", type=Path, default=None, help="state folder (default ~/.mmloom/argilla)"
    )
    p_serve.add_argument(
        "--annotator", action="append", default=[], metavar="NAME",
        help="create an annotator account (repeatable); its password goes to "
        "HOME/passwords/NAME.txt (mode 0600)",
    )  # fmt: skip
    p_serve.add_argument(
        "--workspace",
        default=runtime.DEFAULT_WORKSPACE,
        help=f"workspace the annotators join (default {runtime.DEFAULT_WORKSPACE})",
    )
    p_serve.add_argument("--no-worker", action="store_true", help="do not start the job worker")
    p_stop = sub.add_parser(
        "stop",
        help="stop what `serve` started",
        description="Stop exactly the processes that serve recorded in its home.",
        allow_abbrev=False,
    )
    p_stop.add_argument(
        "--home", type=Path, default=None, help="state folder of the server to stop (as serve)"
    )
    p_users = sub.add_parser(
        "users",
        help="list, add, reset or remove annotators on a running Argilla",
        description="Manage the annotator accounts of a running Argilla: list them with their "
        "progress, add one, reset a password (written to HOME/passwords/NAME.txt), or remove "
        "one from the workspaces (its responses are kept).",
        allow_abbrev=False,
    )
    p_users.add_argument(
        "action", choices=("list", "add", "reset", "remove"), help="what to do (add, reset and "
        "remove need a NAME)"
    )  # fmt: skip
    p_users.add_argument("name", nargs="?", help="username (add, reset, remove)")
    p_users.add_argument(
        "--home", type=Path, default=None,
        help="serve's state folder: its argilla.env gives the owner's credentials when "
        "ARGILLA_API_URL/ARGILLA_API_KEY are unset, and new passwords go to its passwords/ "
        "(default ~/.mmloom/argilla)",
    )  # fmt: skip
    p_users.add_argument(
        "--workspace",
        default=runtime.DEFAULT_WORKSPACE,
        help=f"add: the workspace to join (default {runtime.DEFAULT_WORKSPACE})",
    )
    p_users.add_argument("--json", action="store_true", help="list: print JSON")
    return parser


def _users(args: argparse.Namespace) -> int:
    home = Path(args.home or runtime.default_home()).expanduser().resolve()
    if args.action != "list" and not args.name:
        print(f"error: `users {args.action}` needs a NAME", file=sys.stderr)
        return 2
    try:
        api = users.Argilla(*users.owner_credentials(home))
        if args.action == "list":
            rows = users.list_users(api, home)
            print(json.dumps(rows, indent=2) if args.json else users.format_users(rows))
        elif args.action == "add":
            path, state = users.add_user(api, home, args.name, args.workspace)
            print(
                f"{state} annotator {args.name} in workspace {args.workspace}; password in {path}"
            )
        elif args.action == "reset":
            path = users.reset_password(api, home, args.name)
            print(f"new password for {args.name} in {path}")
        else:
            left = users.remove_user(api, home, args.name)
            print(
                f"removed {args.name} from {', '.join(left) or 'no workspace'}; the account and "
                "its responses are kept (Argilla would delete the responses with the account), "
                "its password is replaced by one nobody knows"
            )
    except MmloomError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _print_accounts(info: runtime.ServerInfo, env_file: Path) -> None:
    """One line per account; generated passwords go to files, never to the terminal."""
    for account in info.accounts:
        if not account.created:
            print(f"  {account.role:9s} {account.username} (exists; credentials unchanged)")
            continue
        line = f"  {account.role:9s} {account.username}"
        if account.password:
            path = users.write_password(info.home, account.username, account.password)
            line += f"  password in {path}"
        if account.api_key:
            line += f"  api key in {env_file}" if env_file.exists() else "  (api key not kept)"
        print(line)
    print("Manage annotators on the running server: mmloom annotate users list|add|reset|remove")


def main(argv: list[str] | None = None) -> int:
    """Run ``serve`` or ``stop``; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "users":
        return _users(args)
    if args.command == "stop":
        runtime.stop(args.home)
        return 0
    try:
        info = runtime.serve(
            args.home,
            args.port,
            owner_username=os.environ.get(runtime.ENV_OWNER_USERNAME),
            owner_password=os.environ.get(runtime.ENV_OWNER_PASSWORD),
            owner_api_key=os.environ.get(runtime.ENV_OWNER_API_KEY),
            annotators=args.annotator,
            workspace=args.workspace,
            worker=not args.no_worker,
        )
    except (runtime.ServeError, InstallError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2  # a user-facing error: one message, exit status 2
    print(f"Argilla is running at {info.url} (home: {info.home}, redis: {info.redis_url})")
    owner = info.accounts[0] if info.accounts else None
    key = os.environ.get(runtime.ENV_OWNER_API_KEY) or (owner.api_key if owner else None)
    env_file = info.home / ENV_FILE
    if key:
        write_env_file(env_file, info.url, key)
    if env_file.exists():
        print(f"  UI: {info.url}   clients: source {env_file}")
        print(f"  ({env_file}, mode 0600, sets ARGILLA_API_URL and the owner's ARGILLA_API_KEY)")
    else:
        print(
            f"  UI: {info.url}   clients: export ARGILLA_API_URL={info.url} and ARGILLA_API_KEY "
            f"(the owner key printed when the owner was created, or {runtime.ENV_OWNER_API_KEY})"
        )
    for account in info.accounts:  # secrets from the environment are never echoed
        if account.created and account.username == info.accounts[0].username:
            if os.environ.get(runtime.ENV_OWNER_PASSWORD):
                account.password = None
            if os.environ.get(runtime.ENV_OWNER_API_KEY):
                account.api_key = None
    _print_accounts(info, env_file)
    print(f"Stop it with: mmloom annotate stop --home {info.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
