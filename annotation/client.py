"""Connecting to Argilla 2.x: credentials from the environment, never logged.

``ARGILLA_API_URL`` and ``ARGILLA_API_KEY`` select the server (the local one from
``mmloom annotate serve`` or any Argilla 2.x deployment). The key is passed to the SDK and
nowhere else: :class:`RedactSecrets` is installed on the root logger's handlers by the CLI so
that no log line can carry it even if a library were to print it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import argilla as rg
import httpx

from annotation.envfile import ENV_KEY, ENV_URL

PAGE = 500


class ClientError(RuntimeError):
    """Argilla cannot be reached or the credentials are missing; the message says what to do."""


class RedactSecrets(logging.Filter):
    """Replace the given secrets with ``***`` in every log record passing through."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for s in self.secrets:
                message = message.replace(s, "***")
            record.msg, record.args = message, None
        return True


def install_redaction(*secrets: str) -> RedactSecrets:
    """Attach a :class:`RedactSecrets` filter to the root logger and all its handlers."""
    flt = RedactSecrets(*secrets)
    root = logging.getLogger()
    root.addFilter(flt)
    for handler in root.handlers:
        handler.addFilter(flt)
    return flt


def credentials() -> tuple[str, str]:
    """``(ARGILLA_API_URL, ARGILLA_API_KEY)`` from the environment.

    Raises:
        ClientError: either is unset.
    """
    url = os.environ.get(ENV_URL, "").strip()
    key = os.environ.get(ENV_KEY, "").strip()
    missing = [name for name, value in ((ENV_URL, url), (ENV_KEY, key)) if not value]
    if missing:
        raise ClientError(
            f"{' and '.join(missing)} not set; export the server URL and an API key (for the "
            "local server: `source <home>/argilla.env`, the file `mmloom annotate serve` "
            "wrote and named, e.g. `source ~/.mmloom/argilla/argilla.env`)"
        )
    return url, key


def connect(api_url: str | None = None, api_key: str | None = None) -> rg.Argilla:
    """An Argilla SDK client for ``api_url``/``api_key`` (default: the environment).

    Raises:
        ClientError: no credentials, the server does not answer, or the key is refused.
    """
    if api_url is None or api_key is None:
        env_url, env_key = credentials()
        api_url, api_key = api_url or env_url, api_key or env_key
    try:
        client = rg.Argilla(api_url=api_url, api_key=api_key, timeout=120)
        client.me  # noqa: B018 (checks the key)
    except Exception as exc:  # the SDK raises several types; none carries the key
        lost = server_lost(exc, api_url)
        if lost is not None:
            raise lost from exc
        raise ClientError(
            f"cannot use Argilla at {api_url} ({type(exc).__name__}); check that the server "
            f"runs (`mmloom annotate serve`) and that {ENV_KEY} is a valid key"
        ) from None
    return client


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and not any(exc is s for s in seen) and len(seen) < 20:
        seen.append(exc)
        yield exc
        exc = exc.__cause__ or exc.__context__


def server_lost(
    exc: BaseException, url: str, during: str | None = None, again: str = ""
) -> ClientError | None:
    """The one message for ``exc`` when the server at ``url`` does not answer or stopped
    answering (a connection refused, reset or cut, a timeout) or failed (HTTP 5xx); None for
    anything else (a refused key, a bad request: the caller's other messages, or a bug).

    Args:
        during: the command that was running (None: while connecting).
        again: what running the same command again does (e.g. that push resumes).
    """
    when = f" during `{during}`" if during else ""
    for e in _causes(exc):
        if isinstance(e, httpx.TransportError):
            verb = "stopped answering" if during else "does not answer"
            what = f"{verb}{when} ({type(e).__name__})"
            break
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is None and not isinstance(e, httpx.HTTPError):
            status = getattr(e, "status_code", None)  # the SDK's ArgillaAPIError
        if isinstance(status, int) and status >= 500:
            what = f"failed{when} (HTTP {status})"
            break
    else:
        return None
    return ClientError(
        f"the Argilla server at {url} {what}; check that it runs (`curl {url}/api/v1/version`); "
        "a local one from `mmloom annotate serve` keeps its logs in <home>/logs and restarts "
        "with `mmloom annotate stop` and `mmloom annotate serve` (the same --home and --port). "
        f"Then run the same command again{again}"
    )


def http(client: rg.Argilla):
    """The SDK's authenticated ``httpx.Client`` (for REST calls the SDK does not wrap)."""
    return client.api.http_client


def iter_raw_records(
    client: rg.Argilla, dataset_id: Any, include: tuple[str, ...] = ()
) -> Iterator[dict]:
    """Every record of a dataset as the REST API's JSON (``GET /api/v1/datasets/{id}/records``).

    Args:
        include: ``responses``, ``suggestions`` (sent as ``include`` parameters).

    Yields:
        Record JSON objects: ``id``, ``external_id``, ``fields``, ``metadata``, ``status``,
        and ``responses`` (``user_id``, ``status``, ``values``) when included.
    """
    offset = 0
    while True:
        params = {"offset": offset, "limit": PAGE, "include": list(include)}
        response = http(client).get(f"/api/v1/datasets/{dataset_id}/records", params=params)
        response.raise_for_status()
        items = response.json()["items"]
        yield from items
        if len(items) < PAGE:
            return
        offset += len(items)


def workspace_names(client: rg.Argilla) -> list[str]:
    """Names of the workspaces the key may use."""
    response = http(client).get("/api/v1/me/workspaces")
    response.raise_for_status()
    return sorted(w["name"] for w in response.json()["items"])


def check_workspace(client: rg.Argilla, workspace: str | None) -> None:
    """Raise a :class:`ClientError` naming the workspaces that exist when ``workspace``
    (None: the key's default) is not one of them."""
    names = workspace_names(client)
    if workspace is None and names:
        return
    if workspace not in names:
        raise ClientError(
            f"workspace {workspace or '(default)'!r} does not exist or this key cannot use it; "
            f"workspaces: {', '.join(names) or 'none'} (pass one with --workspace)"
        )


def dataset_names(client: rg.Argilla, workspace: str | None = None) -> list[str]:
    """Names of the datasets in ``workspace`` (None: every workspace the key may use)."""
    response = http(client).get("/api/v1/me/workspaces")
    response.raise_for_status()
    ids = {w["id"] for w in response.json()["items"] if workspace in (None, w["name"])}
    response = http(client).get("/api/v1/me/datasets")
    response.raise_for_status()
    return sorted(d["name"] for d in response.json()["items"] if d["workspace_id"] in ids)


def find_dataset(client: rg.Argilla, name: str, workspace: str | None = None) -> rg.Dataset | None:
    """The dataset ``name`` in ``workspace`` (None: the key's default workspace), or None.

    Raises:
        ClientError: the workspace does not exist (the message lists those that do).
    """
    check_workspace(client, workspace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns when a dataset is not found
        return client.datasets(name=name, workspace=workspace)


def usernames(client: rg.Argilla) -> dict[str, str]:
    """user id (str) -> username, for the users the key may list (owner/admin keys)."""
    try:
        return {str(user.id): user.username for user in client.users}
    except Exception:  # an annotator key may not list users: fall back to ids
        return {}
