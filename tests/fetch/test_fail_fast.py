"""Failures that another attempt will not cure fail at once, through ``mmloom fetch``: a host
name that does not resolve, a refused connection, HTTP 401/403/404/410. Transient ones
(5xx, 429, a dropped connection) are retried with backoff. Attempts are counted with a
wrapper around the real ``urlopen`` (or the server's request log), never timed."""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest

from tests.fetch.conftest import (
    COCO_ANN,
    COCO_VAL,
    checksums_dir,
    fetch_coco,
    fetch_env,
    gets,
    run_fetch,
)

ANN = "images.cocodataset.org/annotations/annotations_trainval2017.zip"


@pytest.fixture
def attempts(monkeypatch) -> list[str]:
    """Every URL ``urlopen`` is called with, the call going through to the real function."""
    calls: list[str] = []
    real = urllib.request.urlopen

    def counting(request, *args, **kwargs):
        calls.append(request.full_url if isinstance(request, urllib.request.Request) else request)
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    return calls


def retries_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]


def test_dns_failure_is_not_retried(tmp_path, published, attempts, caplog, capsys):
    # RFC 2606: names under .invalid never resolve, with or without a network
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("mirror.mmloom.invalid", 80)
    mirror = "http://mirror.mmloom.invalid"
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    files = type("Mirror", (), {"url": mirror})()  # fetch_coco reads only .url
    caplog.set_level(logging.INFO, logger="mmloom.fetch")
    assert fetch_coco(files, to, sums, "--retries", "5") == 2
    err = capsys.readouterr().err
    assert attempts == [f"{mirror}/{ANN}"]  # one attempt, no retry
    assert not retries_logged(caplog)
    assert "the host name mirror.mmloom.invalid does not resolve" in err
    assert f"{mirror}/{ANN}" in err and "not retried" in err
    assert str(to / "manual/coco/annotations_trainval2017.zip") in err  # what else to do
    assert "Traceback" not in err and err.count("mmloom fetch:") == 1


def test_refused_connection_is_not_retried(tmp_path, published, attempts, caplog, capsys):
    with socket.socket() as s:  # a port nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}"
    files = type("Mirror", (), {"url": mirror})()
    sums = checksums_dir(tmp_path, published)
    assert fetch_coco(files, tmp_path / "data", sums, "--retries", "5") == 2
    err = capsys.readouterr().err
    assert attempts == [f"{mirror}/{ANN}"]
    assert not retries_logged(caplog)
    assert "refused the connection" in err and "not retried" in err


@pytest.mark.parametrize(
    "status, advice",
    [
        (401, "may need a login"),
        (403, "may need a login"),
        (404, "update the URL in its checksums.tsv"),
        (410, "update the URL in its checksums.tsv"),
    ],
)
def test_http_statuses_that_will_not_change_fail_fast(
    tmp_path, serve, published, caplog, capsys, status, advice
):
    files, _ = serve
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("status", status))
    to = tmp_path / "data"
    sums = checksums_dir(tmp_path, published)
    assert fetch_coco(files, to, sums, "--retries", "5") == 2
    err = capsys.readouterr().err
    assert len(gets(files, COCO_ANN)) == 1
    assert not retries_logged(caplog)
    assert f"{files.url}/{ANN} answered HTTP {status}" in err and "not retried" in err
    assert advice in err
    assert str(to / "manual/coco/annotations_trainval2017.zip") in err
    assert not gets(files, COCO_VAL)  # stopped at the first file


@pytest.mark.parametrize("status", [503, 429, 500])
def test_transient_statuses_are_retried_with_backoff(
    tmp_path, serve, published, caplog, capsys, status
):
    files, _ = serve
    sums = checksums_dir(tmp_path, published)
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("status", status))
    assert fetch_coco(files, tmp_path / "data", sums, "--retries", "2") == 2
    assert len(gets(files, COCO_ANN)) == 3  # the first try and 2 retries
    assert len(retries_logged(caplog)) == 2
    assert "3 attempts in a row failed" in capsys.readouterr().err

    # a transient failure that passes: the retry gets the file
    files.put(COCO_ANN, published.http[COCO_ANN], fault=("status_once", status))
    to = tmp_path / "again"
    assert fetch_coco(files, to, sums) == 0
    assert (to / "coco/annotations/captions_val2017.json").is_file()


def test_a_hub_that_does_not_resolve_is_one_message(tmp_path, files_server):
    env = fetch_env(files_server, None, tmp_path, HF_ENDPOINT="http://hub.mmloom.invalid")
    result = run_fetch(env, "remi", "--to", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("mmloom fetch:")]
    assert "http://hub.mmloom.invalid" in line and "the hub could not be reached" in line
    assert "check your network connection, DNS and HF_ENDPOINT" in line
