"""``publish --push-to-hub`` and ``--upload-only`` against a loopback Hub (tests/fetch/servers.py
HubServer plays the Hub API; HF_ENDPOINT points at it). huggingface_hub reads HF_ENDPOINT when
it is imported, so each command runs in a fresh ``python -m pipelines.cli`` process. The Hub is
checked before anything is written: a bad repo id, no token, a refused token or no answer is
one message (exit 2) and no release."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fetch.servers import COMMIT, HubServer

TOKEN = "hf_loopback_test_token"


@pytest.fixture
def hub():
    server = HubServer(token=TOKEN)
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mmloom(tmp_path, endpoint: str, *args: str, token: str | None = TOKEN):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(REPO))
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "publish", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_error(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("mmloom publish: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def publish_args(sample_build, out) -> list[str]:
    return ["--build", str(sample_build), "--output", str(out), "--version", "0.1.0"]


@pytest.mark.parametrize(
    ("repo", "token", "expected"),
    [
        ("not-a-repo", TOKEN, "takes a dataset repo as OWNER/NAME"),
        ("me/bad name!", TOKEN, "is not a valid Hub repo id"),
        ("me/mmie", None, "needs a Hugging Face token"),
        ("me/mmie", "hf_wrong", "refused the token (HTTP 401)"),
    ],
)
def test_the_hub_preflight_refuses_before_the_release_is_written(
    tmp_path, hub, sample_build, repo, token, expected
):
    out = tmp_path / "release"
    args = [*publish_args(sample_build, out), "--push-to-hub", repo]
    message = one_error(mmloom(tmp_path, hub.url, *args, token=token))
    assert expected in message
    assert not out.exists()
    assert "hf_wrong" not in message and TOKEN not in message  # never printed
    assert not hub.state.hub and not hub.state.repos  # nothing uploaded


def test_an_unreachable_hub_is_one_message_and_no_release(tmp_path, sample_build):
    out = tmp_path / "release"
    args = [*publish_args(sample_build, out), "--push-to-hub", "me/mmie"]
    message = one_error(mmloom(tmp_path, f"http://127.0.0.1:{closed_port()}", *args))
    assert "did not answer" in message and "--upload-only" in message
    assert not out.exists()


def test_publish_then_push_uploads_every_file_and_tags_the_version(tmp_path, hub, sample_build):
    out = tmp_path / "release"
    result = mmloom(tmp_path, hub.url, *publish_args(sample_build, out), "--push-to-hub", "me/x")
    assert result.returncode == 0, result.stderr
    assert f"pushed to {hub.url}/datasets/me/x/commit/{COMMIT}" in result.stdout
    local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert hub.uploaded("me/x") == local
    assert hub.state.tags == {("me/x", "v0.1.0"): COMMIT}


def test_upload_only_uploads_a_written_release(tmp_path, hub, release):
    result = mmloom(tmp_path, hub.url, "--upload-only", str(release), "--push-to-hub", "me/x")
    assert result.returncode == 0, result.stderr
    assert f"release 0.1.0 in {release} pushed to" in result.stdout
    files = {p.relative_to(release).as_posix(): p.read_bytes() for p in release.rglob("*")
             if p.is_file()}  # fmt: skip
    assert hub.uploaded("me/x") == files and "manifest.json" in files
    assert hub.state.tags == {("me/x", "v0.1.0"): COMMIT}


def test_upload_only_retries_a_transient_error(tmp_path, hub, release):
    hub.state.fail_next = [503]  # the first upload call (create the repo) gets a 503
    result = mmloom(tmp_path, hub.url, "--upload-only", str(release), "--push-to-hub", "me/x")
    assert result.returncode == 0, result.stderr
    assert "HTTP 503; trying again" in result.stderr
    assert "manifest.json" in hub.uploaded("me/x")


def test_upload_only_fails_fast_on_a_refusal(tmp_path, hub, release):
    hub.state.fail_next = [403]  # the first upload call is refused
    result = mmloom(tmp_path, hub.url, "--upload-only", str(release), "--push-to-hub", "me/x")
    message = one_error(result)
    assert "failed (HTTP 403)" in message and "set HF_TOKEN" in message
    assert f"--upload-only {release} --push-to-hub me/x" in message
    assert "trying again" not in result.stderr  # no retry
    assert not hub.uploaded("me/x")


def test_upload_only_checks_the_release_first(tmp_path, hub, release):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "manifest.json").write_bytes((release / "manifest.json").read_bytes())
    message = one_error(
        mmloom(tmp_path, hub.url, "--upload-only", str(copy), "--push-to-hub", "me/x")
    )
    assert "is not a complete release" in message
    assert not hub.requests()  # the Hub was not even asked


def test_upload_only_takes_no_build_options(tmp_path, hub, release):
    result = mmloom(tmp_path, hub.url, "--upload-only", str(release), "--version", "1.0.0")
    message = one_error(result)
    assert "takes only --push-to-hub REPO" in message and "drop --version" in message
