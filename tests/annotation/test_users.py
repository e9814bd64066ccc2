"""`mmloom annotate users list | add | reset | remove` on the running session server.

Passwords go to ``<home>/passwords/<name>.txt`` (mode 0600) and never to the terminal; a
removed annotator loses their workspaces and password but keeps the account and responses
(Argilla would delete the responses with the account).
"""

from __future__ import annotations

import contextlib
import io
import json
import stat
import uuid

import argilla as rg
import httpx
import pytest

from annotation.cli import main as annotate_main
from annotation.server import cli as server_cli
from annotation.server import runtime


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = annotate_main(argv)
    return rc, out.getvalue(), err.getvalue()


def _signs_in(url: str, name: str, password: str) -> bool:
    response = httpx.post(f"{url}/api/v1/token", data={"username": name, "password": password})
    return response.status_code == 201  # Argilla answers a token with 201 Created


def _list(home) -> dict[str, dict]:
    rc, out, err = _run(["users", "list", "--json", "--home", str(home)])
    assert rc == 0, err
    return {row["username"]: row for row in json.loads(out)}


def test_users_add_list_reset_remove(env, tmp_path):
    home = tmp_path / "home"
    name = f"eve-{uuid.uuid4().hex[:6]}"
    rc, out, err = _run(["users", "add", name, "--home", str(home), "--workspace", env.workspace])
    assert rc == 0, err
    path = home / "passwords" / f"{name}.txt"
    password = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and str(path) in out
    assert password not in out + err and _signs_in(env.url, name, password)
    row = _list(home)[name]
    assert row["role"] == "annotator" and row["workspaces"] == [env.workspace]
    assert row["responses"] == row["submitted"] == 0 and row["password_file"] == str(path)
    rc, _, err = _run(["users", "add", name, "--home", str(home), "--workspace", env.workspace])
    assert rc == 2 and f"users reset {name}" in err

    # a response of theirs, to see that list counts it and remove keeps it
    client = rg.Argilla(api_url=env.url, api_key=env.api_key)
    settings = rg.Settings(
        fields=[rg.TextField("text")], questions=[rg.LabelQuestion("ok", labels=["yes", "no"])]
    )
    dataset = rg.Dataset(
        name=f"users-{uuid.uuid4().hex[:6]}", workspace=env.workspace, settings=settings,
        client=client,
    ).create()  # fmt: skip
    dataset.records.log([rg.Record(id="u-1", fields={"text": "hello"})])
    with env.http() as owner:
        items = owner.get(f"/api/v1/datasets/{dataset.id}/records").json()["items"]
        record_id = items[0]["id"]  # Argilla's record id
        user = next(u for u in owner.get("/api/v1/users").json()["items"] if u["username"] == name)
    with env.http(user["api_key"]) as http:
        body = {"status": "submitted", "values": {"ok": {"value": "yes"}}}
        assert http.post(f"/api/v1/records/{record_id}/responses", json=body).status_code == 201
    assert _list(home)[name]["responses"] == 1 and _list(home)[name]["submitted"] == 1

    rc, out, err = _run(["users", "reset", name, "--home", str(home)])
    new = path.read_text().strip()
    assert rc == 0 and new != password and new not in out + err
    assert _signs_in(env.url, name, new) and not _signs_in(env.url, name, password)

    rc, out, err = _run(["users", "remove", name, "--home", str(home)])
    assert rc == 0 and env.workspace in out and "responses are kept" in out
    assert not path.exists() and not _signs_in(env.url, name, new)
    row = _list(home)[name]
    assert row["workspaces"] == [] and row["responses"] == 1  # the response is still there
    with env.http() as owner:
        responses = owner.get(
            f"/api/v1/datasets/{dataset.id}/records", params={"include": "responses"}
        )
    assert [r["user_id"] for i in responses.json()["items"] for r in i["responses"]] == [user["id"]]

    # add brings a removed annotator back, with a new password
    rc, out, err = _run(["users", "add", name, "--home", str(home), "--workspace", env.workspace])
    assert rc == 0 and out.startswith("restored")
    assert _signs_in(env.url, name, path.read_text().strip())
    assert _list(home)[name]["workspaces"] == [env.workspace]


def test_users_errors_say_what_to_do(env, tmp_path):
    home = tmp_path / "home"
    rc, _, err = _run(["users", "reset", "nobody-here", "--home", str(home)])
    assert rc == 2 and "no account 'nobody-here'" in err
    rc, _, err = _run(["users", "remove", env.username, "--home", str(home)])
    assert rc == 2 and "owner" in err
    rc, _, err = _run(["users", "add", "Bad Name", "--home", str(home)])
    assert rc == 2 and "lower-case" in err
    rc, _, err = _run(["users", "add", "x-y", "--home", str(home), "--workspace", "nope"])
    assert rc == 2 and env.workspace in err
    rc, _, err = _run(["users", "add", "--home", str(home)])
    assert rc == 2 and "needs a NAME" in err


def test_users_read_the_serve_home_env_file(argilla_server, monkeypatch, tmp_path):
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.delenv("ARGILLA_API_KEY", raising=False)
    rc, out, err = _run(["users", "list", "--home", str(argilla_server.home)])
    assert rc == 0 and argilla_server.username in out and "owner" in out, err
    rc, _, err = _run(["users", "list", "--home", str(tmp_path)])
    assert rc == 2 and "ARGILLA_API_KEY" in err and "Traceback" not in err


def test_serve_on_a_running_server_points_to_users_add(argilla_server):
    with pytest.raises(runtime.ServeError, match=r"users add eve --home"):
        runtime.serve(argilla_server.home, annotators=["eve"])


def test_serve_writes_generated_passwords_to_files_not_the_terminal(tmp_path, capsys):
    info = runtime.ServerInfo(
        url="http://127.0.0.1:1",
        home=tmp_path,
        redis_url="unix:///x",
        accounts=[
            runtime.Account("owner", "owner", created=True, password="own-secret-1"),
            runtime.Account("alice", "annotator", created=True, password="alice-secret-1"),
            runtime.Account("bob", "annotator", created=False),
        ],
    )
    server_cli._print_accounts(info, tmp_path / "argilla.env")
    printed = capsys.readouterr().out
    assert "secret" not in printed and "bob (exists" in printed
    for name, secret in (("owner", "own-secret-1"), ("alice", "alice-secret-1")):
        path = tmp_path / "passwords" / f"{name}.txt"
        assert path.read_text().strip() == secret and str(path) in printed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "passwords").stat().st_mode) == 0o700
