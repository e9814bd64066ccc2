"""Entry point for argilla-server processes with mmloom's SQL search engine registered.

Run with the argilla-server virtual environment's Python and this folder's parent on
``PYTHONPATH`` (``mmloom annotate serve`` does both)::

    python -m mmloom_argilla_sql.launcher prepare           # migrations, WAL, accounts
    python -m mmloom_argilla_sql.launcher server --port 6900
    python -m mmloom_argilla_sql.launcher worker
    python -m mmloom_argilla_sql.launcher reindex [--dataset-id ID]   # rebuild the text index

The engine module is imported first, so ``SearchEngine.register("mmloom-sql")`` has run
before argilla-server looks up ``ARGILLA_SEARCH_ENGINE``. ``server`` and ``worker`` also
replace two slow spots of argilla-server 2.8 that change no result
(:func:`_speed_up_server`): logging records through the SDK went from about 40 to about
870 records/s on a 2-core machine (bench/RESULTS.md). ``prepare`` reads the accounts to
create from ``MMLOOM_PREPARE_USERS`` (a JSON list of ``{username, role, password, api_key,
workspaces}``), never from the command line, and prints a JSON summary without secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys

from . import engine


def _migrate() -> None:
    import alembic.config
    from argilla_server.database import ALEMBIC_CONFIG_FILE

    alembic.config.main(argv=["-q", "-c", ALEMBIC_CONFIG_FILE, "upgrade", "head"])


def _enable_wal() -> None:
    """Let readers (search) and the writer (logging, responses) work at the same time."""
    conn = sqlite3.connect(engine.database_path(), timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


async def _ensure_users(users: list[dict]) -> list[dict]:
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, Workspace, WorkspaceUser

    report = []
    async with AsyncSessionLocal() as db:
        for spec in users:
            for name in spec.get("workspaces", []):
                if await Workspace.get_by(db, name=name) is None:
                    await accounts.create_workspace(db, {"name": name})
            user = await accounts.get_user_by_username(db, spec["username"])
            created = user is None
            if created:
                attrs = dict(
                    first_name=spec["username"],
                    username=spec["username"],
                    role=spec["role"],
                    password_hash=accounts.hash_password(spec["password"]),
                )
                if spec.get("api_key"):
                    attrs["api_key"] = spec["api_key"]
                user = await User.create(db, **attrs)
            for name in spec.get("workspaces", []):
                workspace = await Workspace.get_by(db, name=name)
                if (
                    await WorkspaceUser.get_by(db, workspace_id=workspace.id, user_id=user.id)
                    is None
                ):
                    await WorkspaceUser.create(db, workspace_id=workspace.id, user_id=user.id)
            report.append({"username": spec["username"], "role": spec["role"], "created": created})
    return report


def prepare() -> int:
    """Run migrations, switch the database to WAL and create the requested accounts."""
    _migrate()
    _enable_wal()
    users = json.loads(os.environ.pop("MMLOOM_PREPARE_USERS", "[]"))
    report = asyncio.run(_ensure_users(users))
    print(json.dumps({"users": report}), flush=True)
    return 0


def _reuse_metadata_settings_adapter() -> None:
    """Build argilla-server's ``MetadataPropertySettings`` validator once, not per value.

    argilla-server 2.8's ``MetadataProperty.parsed_settings`` constructs a new pydantic
    ``TypeAdapter(MetadataPropertySettings)`` on every access, and record validation reads it
    for every metadata value of every record it receives: sampling the server while the SDK
    logged records with three metadata properties found ~60% of its CPU time there. This
    property does the same validation with one adapter made at start-up.
    """
    from argilla_server.models.database import MetadataProperty
    from argilla_server.models.metadata_properties import MetadataPropertySettings
    from pydantic import TypeAdapter

    if not isinstance(MetadataProperty.__dict__.get("parsed_settings"), property):
        return  # not the 2.8 layout: leave the server as it is
    adapter = TypeAdapter(MetadataPropertySettings)

    def parsed_settings(self: MetadataProperty) -> MetadataPropertySettings:
        return adapter.validate_python(self.settings)

    MetadataProperty.parsed_settings = property(parsed_settings)


def _skip_record_events_without_webhooks() -> None:
    """Build the record webhook events of a bulk upsert only when a webhook is enabled.

    After each bulk upsert, argilla-server 2.8 builds a webhook event for every record (a
    query loading the dataset with its fields, questions, metadata properties, vectors
    settings and workspace, then the record's serialization), and only then asks whether
    any webhook is enabled (none is, in mmloom's servers): once metadata validation was
    fixed (:func:`_reuse_metadata_settings_adapter`), that was ~85% of a bulk request's time.
    This asks first, once per bulk; with an enabled webhook the original code runs as is.
    """
    from argilla_server.bulk.records_bulk import UpsertRecordsBulk
    from argilla_server.contexts import webhooks

    original = UpsertRecordsBulk.__dict__.get("_notify_upsert_record_events")
    if original is None:
        return  # not the 2.8 layout: leave the server as it is

    async def _notify_upsert_record_events(self: UpsertRecordsBulk, records) -> None:
        if await webhooks.list_enabled_webhooks(self._db):
            await original(self, records)

    UpsertRecordsBulk._notify_upsert_record_events = _notify_upsert_record_events


def _speed_up_server() -> None:
    """Apply the two fixes above (they change no result, only the time the server takes)."""
    _reuse_metadata_settings_adapter()
    _skip_record_events_without_webhooks()


def serve(host: str, port: int) -> int:
    """Run the Argilla HTTP server (API and UI) in this process."""
    import uvicorn
    from argilla_server import app

    _speed_up_server()

    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
    return 0


def worker(num_workers: int) -> int:
    """Run argilla-server's background-job workers (rq) in this process."""
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq.worker_pool import WorkerPool

    _speed_up_server()
    pool = WorkerPool(
        connection=REDIS_CONNECTION,
        queues=[DEFAULT_QUEUE.name, HIGH_QUEUE.name],
        num_workers=num_workers,
    )
    pool.start()
    return 0


def reindex(dataset_id: str | None) -> int:
    """Rebuild the engine's text index from the database (all datasets or one)."""
    from uuid import UUID

    from argilla_server.cli.search_engine.reindex import _reindex

    asyncio.run(_reindex(UUID(dataset_id) if dataset_id else None))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``prepare | server | worker`` and run it."""
    parser = argparse.ArgumentParser(prog="mmloom_argilla_sql.launcher")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare")
    p_server = sub.add_parser("server")
    p_server.add_argument("--host", default="127.0.0.1")
    p_server.add_argument("--port", type=int, default=6900)
    p_worker = sub.add_parser("worker")
    p_worker.add_argument("--num-workers", type=int, default=1)
    p_reindex = sub.add_parser("reindex")
    p_reindex.add_argument("--dataset-id", default=None)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare()
    if args.command == "server":
        return serve(args.host, args.port)
    if args.command == "reindex":
        return reindex(args.dataset_id)
    return worker(args.num_workers)


if __name__ == "__main__":
    sys.exit(main())
