"""The Argilla server dies in the middle of ``mmloom annotate push``: one message, exit 2.

The session's real server (``argilla_server``) is shared by every test, so it is not the one
killed: the client reaches it through a TCP relay on 127.0.0.1 that dies, its listener closed
and every connection cut, the moment the first batch of records is sent. For the client that
is a server killed mid-push: a connection cut in the middle of a request, then refused. Before
issue 22 this printed 95 lines of traceback. Running the same push again against the server,
as the message says, finishes it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid

from annotation.client import connect, find_dataset, iter_raw_records
from annotation.settings import dataset_name
from tests.conftest import REPO
from tests.pipelines.tinybuild import write_tiny_build

# the SDK's bulk upsert of records: PUT /api/v1/datasets/{id}/records/bulk
FIRST_BATCH = b"/records/bulk"


class DyingRelay:
    """Relays 127.0.0.1:``port`` to the server at ``upstream`` until a request contains
    ``trigger``; then it dies: the listener is closed (later connections are refused) and
    every open connection is cut, the request that triggered it included."""

    def __init__(self, upstream: tuple[str, int], trigger: bytes) -> None:
        self.upstream = upstream
        self.trigger = trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.died = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.died.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:  # the listener was shut down
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(65536):
                if watch and self.trigger in data:
                    self.die()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def die(self) -> None:
        self.died.set()
        for s in [self.listener, *self._open]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def _push(url: str, key: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARGILLA_API_URL": url, "ARGILLA_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "annotate", "push", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_server_killed_mid_push_is_one_message_and_the_push_resumes(env, tmp_path):
    build = write_tiny_build(tmp_path / "build", n=6)
    round_name = f"lost-{uuid.uuid4().hex[:6]}"
    argv = ["--build", str(build), "--dataset", round_name, "--workspace", env.workspace]
    argv += ["--image-base", "http://127.0.0.1:9/images", "--batch-size", "2"]
    host, port = env.url.removeprefix("http://").split(":")
    relay = DyingRelay((host, int(port)), FIRST_BATCH)
    relay_url = f"http://127.0.0.1:{relay.port}"

    run = _push(relay_url, env.api_key, argv)

    assert relay.died.is_set(), run.stderr  # it died mid-push, after the dataset was made
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, run.stderr
    line = errors[0]
    assert line.startswith("mmloom annotate: error: the Argilla server at " + relay_url)
    assert "stopped answering during `annotate push`" in line
    assert f"curl {relay_url}/api/v1/version" in line and "mmloom annotate serve" in line
    assert "the push resumes" in line
    assert env.api_key not in run.stdout + run.stderr

    # as the message says: once the server answers, the same command finishes the push
    again = _push(env.url, env.api_key, argv)
    assert again.returncode == 0, again.stderr
    client = connect(env.url, env.api_key)
    dataset = find_dataset(client, dataset_name(round_name, "MSR"), env.workspace)
    ids = sorted(r["external_id"] for r in iter_raw_records(client, dataset.id))
    assert ids == sorted(f"MSR_tiny_test_{i}" for i in range(6))
