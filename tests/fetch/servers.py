"""Real HTTP servers on 127.0.0.1 for the fetch tests (no mocks of HTTP).

* :class:`FileServer` serves bytes by path with ``Range`` support, HEAD, a request log,
  and per-path faults: ``hang`` (send N bytes, then stall until released), ``cut`` (send
  N bytes, then close; ``cut_once`` only the first time), ``drop`` (close without
  answering), ``endless`` (200 without a length, then zeros until the client leaves) and
  ``status`` (answer HTTP N, e.g. 403 or 503; ``status_once`` only the first time).
  It is both the ``--mirror`` of every official host (``/<host>/<path>``) and the hub's
  "CDN" (``/cdn/<sha256>``).
* :class:`HubServer` answers what ``huggingface_hub`` calls for a dataset file:
  ``HEAD``/``GET /datasets/<owner>/<name>/resolve/<revision>/<path>``. Like the real hub for
  LFS files it answers 302 to the CDN (another origin) with ``X-Repo-Commit``,
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; an unknown revision or file is 404
  with ``X-Error-Code``. It also plays the upload half of the Hub API that
  ``huggingface_hub.HfApi`` calls for ``upload_folder`` (:class:`HubServer` ``token`` and
  ``uploads``): ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the
  card's front matter), ``POST
  /api/datasets/<repo>/preupload/main`` (every file "regular": its bytes travel base64 in the
  commit), ``POST /api/datasets/<repo>/commit/main`` (NDJSON) and ``POST
  /api/datasets/<repo>/tag/<revision>``; a wrong or missing token is 401, and
  ``fail_next`` answers the next POST calls (the upload) with the statuses listed (0: answer
  normally).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

COMMIT = "5f0c2a7e9d1b3c4a6e8f0a1b2c3d4e5f60718293"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _State:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, tuple[str, int]] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    hub: dict[tuple[str, str], bytes] = field(default_factory=dict)
    cdn: str = ""
    token: str = ""
    repos: set[str] = field(default_factory=set)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, *args) -> None:  # quiet
        pass

    def _record(self) -> None:
        self.state.log.append(Request(self.command, self.path, dict(self.headers.items())))

    def do_HEAD(self) -> None:
        self._record()
        self._serve(head=True)

    def do_GET(self) -> None:
        self._record()
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        raise NotImplementedError

    def _not_found(self, code: str = "EntryNotFound") -> None:
        body = b"not found"
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _FileHandler(_Handler):
    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0] if self.path.startswith("/cdn/") else self.path
        data = self.state.files.get(path)
        if data is None:
            self._not_found()
            return
        fault = self.state.faults.get(path)
        if fault and fault[0] in ("status", "status_once"):
            if fault[0] == "status_once":
                self.state.faults.pop(path, None)
            body = f"HTTP {fault[1]}".encode()
            self.send_response(fault[1])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        if fault and fault[0] == "drop" and not head:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault and fault[0] == "endless" and not head:
            self._endless()
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m and int(m.group(1)) >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.end_headers()
        if head:
            return
        body = data[start:]
        if fault and fault[0] == "cut_once":
            self.state.faults.pop(path, None)
        if fault and fault[0] in ("hang", "cut", "cut_once"):
            self.wfile.write(body[: fault[1]])
            self.wfile.flush()
            if fault[0] == "hang":
                self.state.release.wait(60)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def _endless(self) -> None:
        """A body that never ends (no Content-Length; the end would be the close)."""
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        block = bytes(64 << 10)
        try:
            while not self.state.release.is_set():
                self.wfile.write(block)
        except OSError:  # the client stopped reading and closed: what the test wants
            pass


class _HubHandler(_Handler):
    def _serve(self, head: bool) -> None:
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
        if not m:
            self._not_found("RepoNotFound")
            return
        repo, revision, path = m.groups()
        if revision not in ("main", COMMIT):
            self._not_found("RevisionNotFound")
            return
        data = self.state.hub.get((repo, path))
        if data is None:
            self._not_found("EntryNotFound")
            return
        sha = hashlib.sha256(data).hexdigest()
        self.send_response(302)
        self.send_header("Location", f"{self.state.cdn}/cdn/{sha}?repo={repo}")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef01234567"')
        self.send_header("Content-Length", "0")
        self.end_headers()


class _HubApiHandler(_HubHandler):
    """The hub's resolve URLs (downloads) plus the upload API (see the module docstring)."""

    def do_GET(self) -> None:
        if not self.path.startswith("/api/"):
            super().do_GET()
            return
        self._record()
        if not self._authorised(count=False):
            return
        if self.path.split("?")[0] == "/api/whoami-v2":
            self._json(200, {"type": "user", "name": "me", "auth": {"type": "access_token"}})
            return
        self._not_found("RepoNotFound")

    def do_POST(self) -> None:
        self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorised():
            return
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            repo = json.loads(body)
            name = f"{repo.get('organization') or 'me'}/{repo['name']}"
            if "/" in repo["name"]:
                name = repo["name"]
            self.state.repos.add(name)
            self._json(200, {"url": f"{self._origin}/datasets/{name}", "name": name})
            return
        if path == "/api/validate-yaml":  # the card's front matter must be YAML
            content = json.loads(body)["content"]
            front = content.split("---\n")[1] if content.startswith("---\n") else ""
            try:
                yaml.safe_load(front)
            except yaml.YAMLError as exc:
                self._json(400, {"errors": [{"message": str(exc)}]})
                return
            self._json(200, {"warnings": []})
            return
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(preupload|commit|tag)/([^/]+)", path)
        if not m or m.group(1) not in self.state.repos:
            self._not_found("RepoNotFound")
            return
        repo, kind, revision = m.groups()
        if kind == "preupload":
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                     for f in files]  # fmt: skip
            self._json(200, {"files": modes, "commitOid": COMMIT})
        elif kind == "commit":
            for line in body.decode().splitlines():
                op = json.loads(line)
                if op["key"] == "file":
                    value = op["value"]
                    data = base64.b64decode(value["content"])
                    self.state.hub[(repo, value["path"])] = data
            self._json(200, {"commitUrl": f"{self._origin}/datasets/{repo}/commit/{COMMIT}",
                             "commitOid": COMMIT, "pullRequestUrl": None})  # fmt: skip
        else:
            self.state.tags[(repo, json.loads(body)["tag"])] = revision
            self._json(200, {})

    def _authorised(self, count: bool = True) -> bool:
        status = self.state.fail_next.pop(0) if self.state.fail_next and count else 0
        if status:
            self._json(status, {"error": f"injected {status}"})
            return False
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._json(401, {"error": "Invalid credentials in Authorization header"})
            return False
        return True

    @property
    def _origin(self) -> str:
        return f"http://{self.headers['Host']}"

    def _json(self, status: int, value: dict) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server:
    handler: type[_Handler]

    def __init__(self, state: _State) -> None:
        self.state = state
        handler = type("H", (self.handler,), {"state": state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [
            r
            for r in self.state.log
            if (method is None or r.method == method) and contains in r.path
        ]


class FileServer(_Server):
    handler = _FileHandler

    def __init__(self) -> None:
        super().__init__(_State())

    def put(self, url: str, data: bytes, fault: tuple[str, int] | None = None) -> None:
        """Serve ``data`` as the mirror of the official ``url`` (http(s)://host/path)."""
        path = "/" + url.split("://", 1)[1]
        self.state.files[path] = data
        if fault:
            self.state.faults[path] = fault
        else:
            self.state.faults.pop(path, None)

    def path_of(self, url: str) -> str:
        return "/" + url.split("://", 1)[1]


class HubServer(_Server):
    handler = _HubApiHandler

    def __init__(self, cdn: FileServer | None = None, token: str = "") -> None:
        super().__init__(_State())
        self.cdn = cdn
        self.state.cdn = cdn.url if cdn else ""
        self.state.token = token

    def uploaded(self, repo: str) -> dict[str, bytes]:
        """The files committed to dataset ``repo``, by path."""
        return {path: data for (r, path), data in self.state.hub.items() if r == repo}

    def put(self, repo: str, path: str, data: bytes, fault: tuple[str, int] | None = None) -> None:
        """Serve ``data`` as ``path`` of dataset ``repo``; a ``fault`` applies to its CDN URL."""
        self.state.hub[(repo, path)] = data
        cdn = f"/cdn/{hashlib.sha256(data).hexdigest()}"
        self.cdn.state.files[cdn] = data
        if fault:
            self.cdn.state.faults[cdn] = fault
        else:
            self.cdn.state.faults.pop(cdn, None)
