"""``mmloom annotate users list | add | reset | remove``: annotator accounts on a running Argilla.

Everything goes through Argilla's REST API as the owner: the URL and key come from
``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``, or else from ``<home>/argilla.env`` (written by
``mmloom annotate serve``). Passwords are never printed: ``add`` and ``reset`` write the new
one to ``<home>/passwords/<name>.txt`` (folder mode 0700, file mode 0600, replaced
atomically) and print that path; hand the file's content to the annotator.

``remove`` never deletes the account. Argilla 2.8 deletes a user's responses together with
the user (``responses.user_id`` is ``ON DELETE CASCADE``), which would silently change the
decisions of every round they took part in. Instead ``remove`` takes the annotator out of
every workspace (so no dataset is visible to them any more), replaces the password with a
random one nobody is told, and deletes the password file; the responses stay and ``pull``
still counts them. ``add`` with the name of a removed annotator brings the account back
into the workspace with a new password. (Argilla cannot change an account's API key; a
removed annotator's key sees no workspace, hence no dataset.)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.envfile import ENV_FILE, ENV_KEY, ENV_URL
from schemas.errors import MmloomError

PASSWORD_DIR = "passwords"
NAME_RE = re.compile(r"^[a-z0-9_-]+$")  # also a safe file name for the password file


class UsersError(MmloomError):
    """The account operation cannot go ahead; the message says what to do."""


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            out[key] = value
    return out


def owner_credentials(home: Path) -> tuple[str, str]:
    """``(url, owner API key)`` from the environment, else from ``home/argilla.env``.

    Raises:
        UsersError: neither gives both.
    """
    url = os.environ.get(ENV_URL, "").strip()
    key = os.environ.get(ENV_KEY, "").strip()
    if url and key:
        return url, key
    env_file = home / ENV_FILE
    try:
        values = _read_env_file(env_file)
    except (OSError, ValueError):
        values = {}
    url, key = url or values.get(ENV_URL, ""), key or values.get(ENV_KEY, "")
    if not (url and key):
        raise UsersError(
            f"no Argilla credentials: set {ENV_URL} and {ENV_KEY} (an owner key), or pass the "
            f"--home of `mmloom annotate serve` (its {ENV_FILE} was not found at {env_file})"
        )
    return url, key


@dataclass
class Argilla:
    """A tiny REST client for the owner's account calls (standard library only)."""

    url: str
    api_key: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """``method path`` with a JSON body; the decoded JSON answer.

        Raises:
            UsersError: the server cannot be reached or refuses (the message has its detail,
                never the key).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + path, data=data, method=method,
            headers={"X-Argilla-Api-Key": self.api_key, "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            if err.code in (401, 403):
                raise UsersError(
                    f"Argilla at {self.url} refused the key ({err.code}); managing users needs "
                    f"the owner's key ({ENV_KEY}, or the serve home's {ENV_FILE})"
                ) from None
            raise UsersError(f"Argilla answered {err.code} to {method} {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            raise UsersError(
                f"cannot reach Argilla at {self.url} ({err}); is it running "
                "(`mmloom annotate serve`)?"
            ) from None

    def users(self) -> list[dict[str, Any]]:
        """Every account."""
        return self.call("GET", "/api/v1/users")["items"]

    def user(self, name: str) -> dict[str, Any] | None:
        """The account ``name``, or None."""
        return next((u for u in self.users() if u["username"] == name), None)

    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace (the owner sees all)."""
        return self.call("GET", "/api/v1/me/workspaces")["items"]

    def user_workspaces(self, user_id: str) -> list[dict[str, Any]]:
        """The workspaces ``user_id`` belongs to."""
        return self.call("GET", f"/api/v1/users/{user_id}/workspaces")["items"]


def password_file(home: Path, name: str) -> Path:
    """``home/passwords/<name>.txt``."""
    return home / PASSWORD_DIR / f"{name}.txt"


def write_password(home: Path, name: str, password: str) -> Path:
    """Write ``password`` to :func:`password_file` (folder 0700, file 0600 from creation on,
    replaced atomically); return the path."""
    folder = home / PASSWORD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = password_file(home, name)
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    tmp.replace(path)
    return path


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise UsersError(
            f"username {name!r}: Argilla accepts lower-case letters, digits, '-' and '_' only"
        )


def _workspace_id(api: Argilla, workspace: str) -> str:
    spaces = {w["name"]: w["id"] for w in api.workspaces()}
    if workspace not in spaces:
        raise UsersError(
            f"workspace {workspace!r} does not exist; workspaces: {', '.join(sorted(spaces))} "
            "(pass one with --workspace)"
        )
    return spaces[workspace]


def responses_per_user(api: Argilla) -> dict[str, dict[str, int]]:
    """username -> ``{"submitted": n, "responses": n}`` (responses: submitted, discarded or
    draft) over every dataset: one ``/datasets/{id}/users/progress`` request per dataset."""
    counts: dict[str, dict[str, int]] = {}
    for ds in api.call("GET", "/api/v1/me/datasets")["items"]:
        progress = api.call("GET", f"/api/v1/datasets/{ds['id']}/users/progress")
        for row in progress.get("users") or []:
            mine = counts.setdefault(row["username"], {"submitted": 0, "responses": 0})
            for part in ("completed", "pending"):
                given = row.get(part) or {}
                mine["submitted"] += int(given.get("submitted") or 0)
                mine["responses"] += sum(
                    int(given.get(k) or 0) for k in ("submitted", "discarded", "draft")
                )
    return counts


def list_users(api: Argilla, home: Path) -> list[dict[str, Any]]:
    """One row per account: ``username``, ``role``, ``workspaces``, ``submitted`` and
    ``responses`` (any status) over all datasets, ``password_file`` (the path when mmloom
    wrote one, else None)."""
    counts = responses_per_user(api)
    rows = []
    for user in sorted(api.users(), key=lambda u: u["username"]):
        path = password_file(home, user["username"])
        rows.append(
            {
                "username": user["username"],
                "role": user["role"],
                "workspaces": sorted(w["name"] for w in api.user_workspaces(user["id"])),
                **counts.get(user["username"], {"submitted": 0, "responses": 0}),
                "password_file": str(path) if path.exists() else None,
            }
        )
    return rows


def add_user(api: Argilla, home: Path, name: str, workspace: str) -> tuple[Path, str]:
    """Create annotator ``name`` in ``workspace`` (or bring a removed one back); return the
    password file and ``created`` or ``restored``.

    Raises:
        UsersError: a bad name, a missing workspace, or an account that is already active.
    """
    _check_name(name)
    wid = _workspace_id(api, workspace)
    password = secrets.token_urlsafe(12)
    user = api.user(name)
    if user is None:
        user = api.call(
            "POST", "/api/v1/users",
            {"first_name": name, "username": name, "password": password, "role": "annotator"},
        )  # fmt: skip
        state = "created"
    else:
        if api.user_workspaces(user["id"]):
            raise UsersError(
                f"{name} exists and is active; `mmloom annotate users reset {name}` gives "
                "them a new password"
            )
        api.call("PATCH", f"/api/v1/users/{user['id']}", {"password": password})
        state = "restored"
    api.call("POST", f"/api/v1/workspaces/{wid}/users", {"user_id": user["id"]})
    return write_password(home, name, password), state


def reset_password(api: Argilla, home: Path, name: str) -> Path:
    """Give ``name`` a new password; return its file.

    Raises:
        UsersError: no such account, or the owner (whose credentials serve manages).
    """
    user = _existing(api, name)
    password = secrets.token_urlsafe(12)
    api.call("PATCH", f"/api/v1/users/{user['id']}", {"password": password})
    return write_password(home, name, password)


def remove_user(api: Argilla, home: Path, name: str) -> list[str]:
    """Take ``name`` out of every workspace and lock the account (see the module docstring:
    its responses stay); return the workspaces it left.

    Raises:
        UsersError: no such account, or the owner.
    """
    user = _existing(api, name)
    left = []
    for ws in api.user_workspaces(user["id"]):
        api.call("DELETE", f"/api/v1/workspaces/{ws['id']}/users/{user['id']}")
        left.append(ws["name"])
    api.call("PATCH", f"/api/v1/users/{user['id']}", {"password": secrets.token_urlsafe(24)})
    password_file(home, name).unlink(missing_ok=True)
    return sorted(left)


def _existing(api: Argilla, name: str) -> dict[str, Any]:
    user = api.user(name)
    if user is None:
        names = ", ".join(sorted(u["username"] for u in api.users()))
        raise UsersError(f"no account {name!r}; accounts: {names}")
    if user["role"] == "owner":
        raise UsersError(
            f"{name} is the owner; its password and key come from `mmloom annotate serve` "
            "(MMLOOM_ARGILLA_OWNER_PASSWORD / MMLOOM_ARGILLA_OWNER_API_KEY)"
        )
    return user


def format_users(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`list_users`."""
    head = ("username", "role", "workspaces", "submitted", "responses", "password file")
    table = [head] + [
        (
            r["username"], r["role"], ",".join(r["workspaces"]) or "(none: removed)",
            str(r["submitted"]), str(r["responses"]), r["password_file"] or "-",
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table
    )
