"""Session fixture: one real Argilla (Redis + argilla-server 2.8 + mmloom's SQL engine).

``argilla_server`` starts the server once per test session through ``mmloom annotate serve``
in a temporary home on a free port, yields an :class:`ArgillaTestServer`, and stops it with
``mmloom annotate stop`` at the end (checking that nothing it started is left running).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from annotation.server import runtime
from annotation.server.cli import main as annotate_main

WORKSPACE = "mmloom-tests"


@dataclass
class ArgillaTestServer:
    """A running test server and the owner's credentials."""

    url: str
    api_key: str
    username: str
    password: str
    workspace: str
    home: Path

    def http(self, api_key: str | None = None) -> httpx.Client:
        """An HTTP client for the REST API, authenticated as the owner or ``api_key``."""
        return httpx.Client(
            base_url=self.url, headers={"X-Argilla-Api-Key": api_key or self.api_key}, timeout=60
        )

    def workspace_id(self) -> str:
        """Id of the test workspace."""
        with self.http() as client:
            items = client.get("/api/v1/me/workspaces").raise_for_status().json()["items"]
        return next(w["id"] for w in items if w["name"] == self.workspace)

    def create_annotator(self, username: str, password: str | None = None) -> dict:
        """Create an annotator in the test workspace; return the user JSON plus ``password``.

        The returned dict has ``id``, ``username``, ``api_key`` and ``password``.
        """
        password = password or secrets.token_urlsafe(12)
        with self.http() as client:
            user = (
                client.post(
                    "/api/v1/users",
                    json={
                        "first_name": username,
                        "username": username,
                        "password": password,
                        "role": "annotator",
                    },
                )
                .raise_for_status()
                .json()
            )
            client.post(
                f"/api/v1/workspaces/{self.workspace_id()}/users", json={"user_id": user["id"]}
            ).raise_for_status()
            if "api_key" not in user:
                token = client.post(
                    "/api/v1/token", data={"username": username, "password": password}
                )
                token.raise_for_status()
        return {**user, "password": password}


def sign_in_and_open(page, server_url: str, annotator: dict, dataset_id) -> None:
    """Sign in to Argilla's real UI as ``annotator`` and open a dataset's annotation page."""
    page.goto(f"{server_url}/sign-in")
    page.fill("input[name=Username]", annotator["username"])
    page.fill("input[name=Password]", annotator["password"])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "sign-in" not in url)
    page.goto(f"{server_url}/dataset/{dataset_id}/annotation-mode")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _image_registry(tmp_path_factory):
    """Image servers the tests start are registered in a temporary file, not ~/.mmloom."""
    saved = os.environ.get("MMLOOM_IMAGE_REGISTRY")
    path = tmp_path_factory.mktemp("image-registry") / "image-servers.json"
    os.environ["MMLOOM_IMAGE_REGISTRY"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("MMLOOM_IMAGE_REGISTRY", None)
    else:
        os.environ["MMLOOM_IMAGE_REGISTRY"] = saved


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory) -> ArgillaTestServer:
    """Start a real Argilla for the whole session and stop it afterwards."""
    home = tmp_path_factory.mktemp("argilla-home")
    port = _free_port()
    creds = {
        runtime.ENV_OWNER_USERNAME: "mmloom-owner",
        runtime.ENV_OWNER_PASSWORD: secrets.token_urlsafe(16),
        runtime.ENV_OWNER_API_KEY: secrets.token_urlsafe(32),
    }
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    try:
        status = annotate_main(
            ["serve", "--port", str(port), "--home", str(home), "--workspace", WORKSPACE]
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert status == 0, f"mmloom annotate serve failed; logs in {home / 'logs'}"
    try:
        yield ArgillaTestServer(
            url=f"http://127.0.0.1:{port}",
            api_key=creds[runtime.ENV_OWNER_API_KEY],
            username=creds[runtime.ENV_OWNER_USERNAME],
            password=creds[runtime.ENV_OWNER_PASSWORD],
            workspace=WORKSPACE,
            home=home,
        )
    finally:
        started = runtime.running(home)
        annotate_main(["stop", "--home", str(home)])
        left = {name: pid for name, pid in started.items() if Path(f"/proc/{pid}").exists()}
        assert not left, f"mmloom annotate stop left processes running: {left}"


@pytest.fixture(scope="module")
def env(argilla_server):
    """The session's server, with ``ARGILLA_API_URL``/``ARGILLA_API_KEY`` set for the module
    (as a user who sourced the server's env file)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARGILLA_API_URL", argilla_server.url)
        mp.setenv("ARGILLA_API_KEY", argilla_server.api_key)
        yield argilla_server
