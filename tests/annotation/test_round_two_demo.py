"""The second round after `make demo`, on the servers the demo left running.

The demo pushes with its own image root (``MMLOOM_ARGILLA_HOME=out/argilla``, so
``out/argilla/image-server``) and ends with the pull line of scripts/demo_next_steps.sh. A
user then runs that pull in a fresh shell (no ``MMLOOM_ARGILLA_HOME``) and the second-round
push command it prints. This test does exactly that against the session's Argilla, with a
free image port instead of 6901: the printed command is parsed from pull's output and run
as printed; it must succeed on the running image server, which keeps serving the first
round's images and now serves the second round's too.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from annotation import images as image_store
from annotation.client import connect, find_dataset, iter_raw_records
from annotation.rounds import record_round, second_round_command
from annotation.rubric import load_rubric
from annotation.settings import dataset_name
from tests.annotation.test_second_round import _answer, _values

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shell(line: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _image_urls(client, name: str, category: str, workspace: str) -> list[str]:
    ds = find_dataset(client, dataset_name(name, category), workspace)
    html = "".join(i["fields"]["item"]["html"] for i in iter_raw_records(client, ds.id))
    return sorted(set(re.findall(r'<img src="([^"]+)"', html)))


def test_printed_second_round_runs_on_the_demo_servers(env, sample_build, tmp_path):
    demo_home = tmp_path / "out" / "argilla"  # the demo's MMLOOM_ARGILLA_HOME
    env_file = env.home / "argilla.env"
    port = _free_port()
    name = f"demo2-{uuid.uuid4().hex[:6]}"
    fresh = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ARGILLA_") and k != "MMLOOM_ARGILLA_HOME"
    }
    fresh["PYTHONPATH"] = str(REPO)  # this checkout's code behind the venv's entry point
    root = demo_home / "image-server"
    try:
        # round 1, as scripts/demo.sh pushes it (its home, hence its image root)
        push = (
            f"source {env_file} && MMLOOM_ARGILLA_HOME={demo_home} {BIN}/mmloom annotate push "
            f"--build {sample_build} --dataset {name} --workspace {env.workspace} "
            f"--sample stratified --per-cell 1 --image-port {port}"
        )
        done = _shell(push, fresh)
        assert done.returncode == 0, done.stderr[-3000:]
        state = image_store.running_servers()[root.resolve()]
        client = connect(env.url, env.api_key)
        rubric = load_rubric()
        category = "PBL"
        round1_images = _image_urls(client, name, category, env.workspace)
        assert round1_images and all(_status(u) == 200 for u in round1_images)

        # two annotators send one record back: fix, with only a comment
        ds = find_dataset(client, dataset_name(name, category), env.workspace)
        item = sorted(iter_raw_records(client, ds.id), key=lambda i: i["external_id"])[0]
        fld, sub = item["metadata"]["field"], item["metadata"]["subfield"]
        for who in ("a", "b"):
            user = env.create_annotator(f"d2-{who}-{uuid.uuid4().hex[:6]}")
            _answer(env.url, user, item["id"], _values(rubric, category, "fix", fld, sub, "redo"))

        # the demo's pull line, as printed, in a fresh shell
        printed = subprocess.run(
            ["bash", "-c", 'source scripts/demo_next_steps.sh && demo_next_steps "$@"', "-",
             str(BIN), str(env_file), str(sample_build), name, env.workspace,
             str(tmp_path / "annotations"), str(tmp_path / "release")],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        pull_line = next(x for x in printed.splitlines() if " annotate pull " in x)
        pulled = _shell(pull_line, fresh)
        assert pulled.returncode == 0, pulled.stderr[-3000:]
        command = next(x.strip() for x in pulled.stdout.splitlines() if " annotate push " in x)
        assert "BUILD" not in command.split() and f"{name}-r2" in command

        # ... then the command pull printed, as printed (the shell that ran the pull line
        # has the env file's variables; still no MMLOOM_ARGILLA_HOME)
        shell = {**fresh, "ARGILLA_API_URL": env.url, "ARGILLA_API_KEY": env.api_key}
        second = _shell(command, shell)
        assert second.returncode == 0, (command, second.stderr[-3000:])
        assert env.api_key not in second.stdout + second.stderr + pulled.stdout

        # the same image server (same process) serves both rounds
        assert image_store.running_servers()[root.resolve()] == state
        assert all(_status(u) == 200 for u in round1_images)
        round2_images = _image_urls(client, f"{name}-r2", category, env.workspace)
        assert round2_images and all(_status(u) == 200 for u in round2_images)
        assert all(u.startswith(f"http://127.0.0.1:{port}/images/") for u in round2_images)
        ds2 = find_dataset(client, dataset_name(f"{name}-r2", category), env.workspace)
        html = next(iter(iter_raw_records(client, ds2.id)))["fields"]["item"]["html"]
        assert "gave no field or subfield correction" in html and "redo" in html

        # a push that names another root on that port is told which root is in use
        other = _shell(
            f"{command.replace(f'{name}-r2', f'{name}-r3').split(' --image-root')[0]} "
            f"--image-root {tmp_path / 'elsewhere'} --image-port {port}",
            shell,
        )
        assert other.returncode != 0
        assert f"--image-root {root.resolve()}" in other.stderr and "Traceback" not in other.stderr
    finally:
        image_store.stop_image_server(root)


def test_a_busy_image_port_names_the_root_in_use(tmp_path):
    first, other = tmp_path / "out" / "argilla" / "image-server", tmp_path / "elsewhere"
    port = _free_port()
    image_store.start_image_server(first, port)
    try:
        assert image_store.server_on_port(port) == first.resolve()
        image_store.check_port(first, port)  # its own server: fine
        with pytest.raises(image_store.ImageServerError) as err:
            image_store.check_port(other, port)
        assert f"--image-root {first.resolve()}" in str(err.value)
        assert image_store.start_image_server(first, port) == f"http://127.0.0.1:{port}"
    finally:
        image_store.stop_image_server(first)
    with socket.socket() as busy:  # something else on the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(image_store.ImageServerError, match="not an mmloom image server"):
            image_store.check_port(other, busy.getsockname()[1])


def test_second_round_command_is_complete_and_quoted(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", [".venv/bin/mmloom"])
    monkeypatch.setenv("MMLOOM_IMAGE_REGISTRY", str(tmp_path / "image-servers.json"))
    url = "http://127.0.0.1:6900"
    pull_dir = tmp_path / "my annotations"
    command, complete = second_round_command(url, "ws", "round1", pull_dir)
    assert not complete and "--build BUILD" in command  # never pushed from here
    record_round(
        url, "ws", "round1", {"build": "/b/out sample", "image_root": "/r", "image_port": 7001}
    )
    command, complete = second_round_command(url, "ws", "round1", pull_dir)
    assert complete and shlex.split(command) == [
        ".venv/bin/mmloom", "annotate", "push", "--build", "/b/out sample", "--workspace", "ws",
        "--needs-edit", str(pull_dir), "--dataset", "round1-r2", "--image-root", "/r",
        "--image-port", "7001",
    ]  # fmt: skip
    record_round(url, "ws", "round1-r2", {"build": "/b", "image_base": "https://cdn/x"})
    command, _ = second_round_command(url, "ws", "round1-r2", pull_dir)
    assert "--dataset round1-r3" in command and command.endswith("--image-base https://cdn/x")
