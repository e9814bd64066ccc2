"""How record images reach the annotator's browser: by URL, never base64.

Local server: :func:`export_images` copies a build's images (from its image store,
``<build>/images/``) into ``ROOT/images/<sha256>.<ext>``, and :func:`start_image_server`
starts a small read-only HTTP server on 127.0.0.1 that serves exactly those files
(``GET``/``HEAD`` of ``/images/<sha256>.<ext>``; anything else is 404 or 405; no listing).
It runs detached, so it keeps serving after ``mmloom annotate push`` returns;
``ROOT/image-server.json`` records its pid, ``~/.mmloom/image-servers.json`` (or
``$MMLOOM_IMAGE_REGISTRY``) lists the roots of every server started, whatever
``MMLOOM_ARGILLA_HOME`` or ``--image-root`` was, and ``mmloom annotate images stop`` stops them all
(:func:`stop_all_image_servers`; ``--image-root ROOT`` stops only that one). A later push (a
second round) finds the server already running on its port through the registry
(:func:`server_on_port`) and adds its images to that server's root: files are
content-addressed, so the earlier round's images stay served.

Remote deployments: pass a base URL (``https://cdn.example.org/builds/v1``) or a bucket prefix
(``gs://bucket/builds/v1``, ``s3://bucket/builds/v1``) under which ``images/<sha256>.<ext>``
is readable by annotators; :func:`url_builder` maps record image paths onto it.

    python -m annotation.images --root ROOT [--port 6901]   # run the server in the foreground
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("mmloom.annotate")

DEFAULT_PORT = 6901
STATE_NAME = "image-server.json"
PATH_RE = re.compile(r"^/?(images/[0-9a-f]{64}\.(jpg|png|gif|webp|bmp|tiff))$")
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}


class ImageServerError(RuntimeError):
    """The image server could not be started or an image base is invalid."""


def url_builder(base: str) -> Callable[[str], str]:
    """Map a record image path (``images/<sha256>.<ext>``) to a URL under ``base``.

    Args:
        base: ``http(s)://…`` (taken as is), ``gs://bucket/prefix`` (served by
            storage.googleapis.com) or ``s3://bucket/prefix`` (bucket.s3.amazonaws.com).

    Raises:
        ImageServerError: another scheme.
    """
    base = base.rstrip("/")
    if base.startswith("gs://"):
        base = "https://storage.googleapis.com/" + base[len("gs://") :]
    elif base.startswith("s3://"):
        bucket, _, prefix = base[len("s3://") :].partition("/")
        base = f"https://{bucket}.s3.amazonaws.com" + (f"/{prefix}" if prefix else "")
    elif not base.startswith(("http://", "https://")):
        raise ImageServerError(
            f"image base {base!r} must start with http://, https://, gs:// or s3://"
        )

    def url(path: str) -> str:
        if not PATH_RE.match(path):
            raise ImageServerError(f"unexpected image path {path!r} (want images/<sha256>.<ext>)")
        return f"{base}/{path}"

    return url


def export_images(
    records: Iterable[dict[str, Any]], root: Path, read_image: Callable[[str], bytes]
) -> dict[str, int]:
    """Write the images of ``records`` under ``root/images``, one at a time.

    ``read_image(path)`` returns the bytes of a record image path (``images/<sha256>.<ext>``),
    e.g. ``schemas.store.ImageStore(build_dir).get``. Files are content-addressed and
    written atomically, so a second export (or another build sharing images) only reads and
    writes what is missing. An image whose bytes do not hash to its name is not written and
    counted as ``mismatched``; one that cannot be read is counted as ``missing_bytes``.

    Returns:
        Counts: ``written``, ``present``, ``mismatched``, ``missing_bytes``.
    """
    out = Path(root) / "images"
    out.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "present": 0, "mismatched": 0, "missing_bytes": 0}
    for record in records:
        for image in record.get("images") or []:
            path = image.get("path") or ""
            if not PATH_RE.match(path):
                counts["mismatched"] += 1
                continue
            target = out / path.split("/", 1)[1]
            if target.exists():
                counts["present"] += 1
                continue
            try:
                data = read_image(path)
            except Exception:  # missing or unreadable: counted, the push goes on
                data = b""
            if not data:
                counts["missing_bytes"] += 1
                continue
            if (
                hashlib.sha256(data).hexdigest() != image.get("sha256")
                or image["sha256"] not in path
            ):
                counts["mismatched"] += 1
                continue
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            counts["written"] += 1
    return counts


def make_handler(root: Path) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``root/images/<sha256>.<ext>`` read-only."""
    root = Path(root).resolve()

    class Handler(BaseHTTPRequestHandler):
        server_version = "mmloom-images"
        sys_version = ""

        def _file(self) -> Path | None:
            match = PATH_RE.match(self.path.split("?", 1)[0])
            if not match:
                return None
            path = root / match.group(1)
            return path if path.is_file() else None

        def _send(self, head_only: bool) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            data = b"" if head_only else path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES[path.suffix[1:]])
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if data:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

        def _refuse(self) -> None:
            self.send_error(405)

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve_forever(root: Path, port: int) -> None:
    """Serve ``root`` on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(root))

    def _on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- the detached server -----------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/images/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 404 is the server answering
    except (urllib.error.URLError, OSError):
        return False


def _state(root: Path) -> dict[str, Any] | None:
    path = Path(root) / STATE_NAME
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _start_time(state["pid"]) == state["start_time"] else None


def registry_path() -> Path:
    """``$MMLOOM_IMAGE_REGISTRY`` or ``~/.mmloom/image-servers.json``: the roots of the image
    servers started, so that a bare ``images stop`` finds them all (one file per user, not per
    ``MMLOOM_ARGILLA_HOME``: ``make demo`` starts its server under ``out/argilla``)."""
    path = os.environ.get("MMLOOM_IMAGE_REGISTRY") or Path.home() / ".mmloom" / "image-servers.json"
    return Path(path).expanduser()


def _registered() -> list[str]:
    try:
        roots = json.loads(registry_path().read_text())
    except (OSError, ValueError):
        return []
    return [r for r in roots if isinstance(r, str)] if isinstance(roots, list) else []


def _register(root: Path, add: bool) -> None:
    roots = [r for r in _registered() if r != str(root)] + ([str(root)] if add else [])
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(roots))
    tmp.replace(path)


def port_of(url: str) -> int | None:
    """The port of an image server URL (``http://127.0.0.1:6901``), or None."""
    try:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])
    except (IndexError, ValueError):
        return None


def running_servers() -> dict[Path, dict[str, Any]]:
    """Root -> state of every registered image server that is still running."""
    out = {}
    for root in dict.fromkeys(Path(r).resolve() for r in _registered()):
        state = _state(root) if root.exists() else None
        if state:
            out[root] = state
    return out


def server_on_port(port: int) -> Path | None:
    """The root of the running mmloom image server on 127.0.0.1:``port``, or None."""
    for root, state in running_servers().items():
        if port_of(state["url"]) == port:
            return root
    return None


def check_port(root: Path, port: int) -> None:
    """Fail before any work when ``port`` is taken by something other than ``root``'s server.

    Raises:
        ImageServerError: the port is in use (the message names the root of the mmloom image
            server that holds it, and the flag that reuses it).
    """
    state = _state(Path(root).resolve()) if Path(root).exists() else None
    if state:
        return
    with socket.socket() as s:
        busy = s.connect_ex(("127.0.0.1", port)) == 0
    if not busy:
        return
    other = server_on_port(port)
    if other is not None:
        raise ImageServerError(
            f"port {port} on 127.0.0.1 is in use by mmloom's image server for {other} (an "
            f"earlier push; its annotators still need it). Pass --image-root {other} to add "
            "this round's images to it (images are content-addressed, nothing is replaced), "
            "or --image-port with a free port for a second server"
        )
    raise ImageServerError(
        f"port {port} on 127.0.0.1 is in use by a program that is not an mmloom image server; "
        "pass another --image-port (or stop what runs there)"
    )


def start_image_server(root: Path, port: int = DEFAULT_PORT) -> str:
    """Start (or reuse) the detached loopback image server for ``root``; return its base URL.

    Raises:
        ImageServerError: the port is taken by something else, or the server did not start.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = _state(root)
    if state:
        return state["url"]
    check_port(root, port)
    log_file = open(root / "image-server.log", "ab")  # noqa: SIM115 (owned by the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotation.images", "--root", str(root), "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent),
    )  # fmt: skip
    log_file.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if _answers(url):
            break
        if proc.poll() is not None:
            raise ImageServerError(f"the image server exited; see {root / 'image-server.log'}")
        time.sleep(0.1)
    else:
        proc.terminate()
        raise ImageServerError(f"the image server did not answer; see {root / 'image-server.log'}")
    state = {"pid": proc.pid, "start_time": _start_time(proc.pid), "url": url, "root": str(root)}
    (root / STATE_NAME).write_text(json.dumps(state))
    _register(root, add=True)
    return url


def stop_image_server(root: Path) -> bool:
    """Stop the image server started for ``root`` (by its recorded pid); True if one ran."""
    root = Path(root).resolve()
    state = _state(root)
    if (root / STATE_NAME).exists():
        (root / STATE_NAME).unlink()
    _register(root, add=False)
    if not state:
        return False
    os.kill(state["pid"], signal.SIGTERM)
    for _ in range(50):
        if _start_time(state["pid"]) != state["start_time"]:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state["pid"], os.WNOHANG)
        time.sleep(0.1)
    return True


def stop_all_image_servers(default_root: Path | None = None) -> list[Path]:
    """Stop every image server in the registry (and ``default_root``'s); return the roots
    whose server was running."""
    roots = [Path(r) for r in _registered()]
    if default_root is not None:
        roots.append(Path(default_root))
    stopped = []
    for root in dict.fromkeys(r.resolve() for r in roots):
        if stop_image_server(root):
            stopped.append(root)
    return stopped


def main(argv: list[str] | None = None) -> int:
    """``python -m annotation.images --root ROOT [--port P]``: serve in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m annotation.images",
        description=__doc__.split("\n")[0],
        allow_abbrev=False,
    )
    parser.add_argument("--root", type=Path, required=True, help="folder holding images/")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve_forever(args.root, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
