"""Start and stop a local Argilla: Redis, argilla-server (API + UI) and its job worker.

``serve`` keeps everything in one home folder (default ``~/.mmloom/argilla`` or
``$MMLOOM_ARGILLA_HOME``)::

    HOME/argilla.db              Argilla's SQLite database (WAL mode)
    HOME/mmloom-search-index.db  full-text index of the SQL search engine
    HOME/redis.sock              private Redis (only when serve started one)
    HOME/logs/*.log              server, worker and Redis output
    HOME/state.json              what serve started: pid, process start time, URL

Every process is started in its own session, and ``stop`` signals exactly the recorded
process groups after checking, through ``/proc/PID/stat``, that each pid still belongs to
the process serve started (a recycled pid is left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from annotation.server.install import ensure_server_venv
from schemas.procs import alive, process_start

EXT_DIR = Path(__file__).resolve().parent / "argilla_ext"
ENGINE_NAME = "mmloom-sql"
STATE_NAME = "state.json"
DEFAULT_PORT = 6900
DEFAULT_WORKSPACE = "mmloom"
START_TIMEOUT_S = 300

ENV_OWNER_USERNAME = "MMLOOM_ARGILLA_OWNER_USERNAME"
ENV_OWNER_PASSWORD = "MMLOOM_ARGILLA_OWNER_PASSWORD"
ENV_OWNER_API_KEY = "MMLOOM_ARGILLA_OWNER_API_KEY"
ENV_HOME = "MMLOOM_ARGILLA_HOME"


class ServeError(RuntimeError):
    """The local Argilla could not be started; the message says what to do."""


@dataclass
class Account:
    """A user account serve made sure exists; secrets are only set when serve created it."""

    username: str
    role: str
    created: bool = False
    password: str | None = None
    api_key: str | None = None


@dataclass
class ServerInfo:
    """What ``serve`` started."""

    url: str
    home: Path
    redis_url: str
    accounts: list[Account] = field(default_factory=list)


def default_home() -> Path:
    """``$MMLOOM_ARGILLA_HOME`` or ``~/.mmloom/argilla``."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".mmloom" / "argilla").expanduser()


# -- processes -------------------------------------------------------------------------


def _alive(entry: dict) -> bool:
    return alive(entry["pid"], entry["start_time"])


def _gone(entry: dict) -> bool:
    """No process with the entry's pid and start time is left, not even a zombie (a zombie of
    ours stays until it is reaped; while its threads exit it cannot be reaped yet)."""
    return process_start(entry["pid"]) != entry["start_time"]


def running_url(home: Path | str | None = None) -> str | None:
    """The URL of the Argilla started from ``home`` if its processes are alive, else None."""
    home = Path(home).expanduser() if home else default_home()
    state = _read_state(home)
    alive = state["processes"] and all(_alive(e) for e in state["processes"].values())
    return state.get("url") if alive else None


def _read_state(home: Path) -> dict:
    path = home / STATE_NAME
    if not path.exists():
        return {"processes": {}}
    return json.loads(path.read_text())


def _write_state(home: Path, state: dict) -> None:
    tmp = home / (STATE_NAME + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(home / STATE_NAME)


def _spawn(name: str, cmd: list[str], env: dict, home: Path, state: dict) -> subprocess.Popen:
    log = open(home / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=home,
    )  # fmt: skip
    log.close()
    start = None
    for _ in range(50):
        start = process_start(proc.pid)
        if start is not None:
            break
        time.sleep(0.01)
    state["processes"][name] = {"pid": proc.pid, "start_time": start, "cmd": cmd[:4]}
    _write_state(home, state)
    return proc


def _terminate(entry: dict, timeout_s: float = 20.0) -> bool:
    """SIGTERM the process group serve started for ``entry``; SIGKILL it after ``timeout_s``."""
    if _gone(entry):
        return False
    pid = entry["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(entry):
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap if it is our own child
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    try:  # the group may still hold forked children (rq work horses)
        os.killpg(pid, 0)
        time.sleep(0.5)
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


# -- redis -----------------------------------------------------------------------------


def _redis_ping(url: str) -> bool:
    """True when a Redis at ``url`` (redis://host:port/db or unix://path) answers PING."""
    try:
        if url.startswith("unix://"):
            path = url[len("unix://") :].split("?")[0]
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            sock.connect(path)
        else:
            rest = url.split("://", 1)[1].split("/")[0].rsplit("@", 1)[-1]
            host, _, port = rest.partition(":")
            sock = socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=1.0)
        with sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start_redis(home: Path, env: dict, state: dict) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServeError(
            "No Redis answers and redis-server is not installed. Run "
            "scripts/install_system_deps.sh (Debian: apt-get install redis-server), or set "
            "ARGILLA_REDIS_URL to a running Redis."
        )
    sock = home / "redis.sock"
    if len(str(sock)) < 100:
        args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}?db=0"
    else:
        port = _free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    cmd = [binary, *args, "--save", "", "--appendonly", "no", "--dir", str(home)]
    proc = _spawn("redis", cmd, env, home, state)
    for _ in range(100):
        if _redis_ping(url):
            return url
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise ServeError(f"redis-server did not start; see {home / 'logs' / 'redis.log'}")


# -- serve / stop ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _child_env(home: Path, redis_url: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("MMLOOM_")
    }
    env.update(
        PYTHONPATH=str(EXT_DIR),
        ARGILLA_HOME_PATH=str(home),
        ARGILLA_DATABASE_URL=f"sqlite+aiosqlite:///{home / 'argilla.db'}?check_same_thread=False",
        ARGILLA_SEARCH_ENGINE=ENGINE_NAME,
        ARGILLA_REDIS_URL=redis_url,
        ARGILLA_ENABLE_TELEMETRY="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServeError("argilla-server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/api/v1/version", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ServeError(f"argilla-server did not answer within {timeout_s:.0f} s")


def _log_tail(home: Path, name: str, lines: int = 25) -> str:
    path = home / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def serve(
    home: Path | None = None,
    port: int = DEFAULT_PORT,
    *,
    owner_username: str | None = None,
    owner_password: str | None = None,
    owner_api_key: str | None = None,
    annotators: list[str] | tuple[str, ...] = (),
    workspace: str = DEFAULT_WORKSPACE,
    worker: bool = True,
    venv: Path | None = None,
    log=print,
) -> ServerInfo:
    """Start Redis (if needed), argilla-server with the SQL engine, and its worker.

    Args:
        home: state folder (default :func:`default_home`).
        port: HTTP port on 127.0.0.1.
        owner_username: owner account name (default ``owner``).
        owner_password: owner password; generated when None and the owner is new.
        owner_api_key: owner API key; generated when None and the owner is new.
        annotators: annotator usernames to create (generated passwords) in ``workspace``.
        workspace: workspace created for the owner and annotators.
        worker: also start argilla-server's background-job worker.
        venv: argilla-server venv (default ``install.default_venv()``).
        log: callable for progress lines (never given secrets).

    Returns:
        A :class:`ServerInfo`; accounts created by this call carry their secrets.

    Raises:
        ServeError: something could not start; everything started so far is stopped.
    """
    home = Path(home or default_home()).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    (home / "logs").mkdir(exist_ok=True)
    state = _read_state(home)
    running = [n for n, e in state["processes"].items() if _alive(e)]
    if running:
        if annotators:
            adds = "; ".join(f"mmloom annotate users add {n} --home {home}" for n in annotators)
            raise ServeError(
                f"An Argilla started from {home} is already running at {state.get('url')}; "
                f"add annotators to it without a restart: {adds}"
            )
        raise ServeError(
            f"An Argilla started from {home} is still running ({', '.join(running)}) at "
            f"{state.get('url')}; run `mmloom annotate stop --home {home}` first."
        )
    if _port_busy(port):
        raise ServeError(f"Port {port} on 127.0.0.1 is in use; pass another --port.")
    python = ensure_server_venv(venv, log=log)
    state = {"processes": {}, "url": f"http://127.0.0.1:{port}"}
    _write_state(home, state)
    try:
        redis_url = os.environ.get("ARGILLA_REDIS_URL")
        if redis_url and _redis_ping(redis_url):
            log(f"Using the Redis at {redis_url}")
        else:
            redis_url = _start_redis(home, {"PATH": os.environ.get("PATH", "")}, state)
        state["redis_url"] = redis_url
        _write_state(home, state)
        env = _child_env(home, redis_url)

        owner = Account(owner_username or "owner", "owner")
        specs = [
            {
                "username": owner.username,
                "role": "owner",
                "password": owner_password or secrets.token_urlsafe(18),
                "api_key": owner_api_key or secrets.token_urlsafe(32),
                "workspaces": [workspace],
            }
        ]
        accounts = [owner]
        for name in annotators:
            specs.append(
                {
                    "username": name,
                    "role": "annotator",
                    "password": secrets.token_urlsafe(12),
                    "workspaces": [workspace],
                }
            )
            accounts.append(Account(name, "annotator"))
        log("Preparing the database (migrations, accounts) ...")
        result = subprocess.run(
            [str(python), "-m", "mmloom_argilla_sql.launcher", "prepare"],
            env={**env, "MMLOOM_PREPARE_USERS": json.dumps(specs)},
            cwd=home, capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            (home / "logs" / "prepare.log").write_text(result.stderr)
            raise ServeError(
                "Preparing Argilla's database failed:\n"
                + "\n".join(result.stderr.splitlines()[-15:])
            )
        report = json.loads(result.stdout.strip().splitlines()[-1])["users"]
        for account, spec, row in zip(accounts, specs, report):
            account.created = row["created"]
            if account.created:
                account.password = spec["password"]
                account.api_key = spec.get("api_key")

        cmd = [str(python), "-m", "mmloom_argilla_sql.launcher"]
        server = _spawn("server", [*cmd, "server", "--port", str(port)], env, home, state)
        if worker:
            _spawn("worker", [*cmd, "worker", "--num-workers", "1"], env, home, state)
        log(f"Starting argilla-server on {state['url']} ...")
        try:
            _wait_http(state["url"], server, START_TIMEOUT_S)
        except ServeError as err:
            tail = _log_tail(home, "server")
            raise ServeError(f"{err}; last lines of the server log:\n{tail}") from err
    except BaseException:
        stop(home, log=lambda *_: None)
        raise
    return ServerInfo(url=state["url"], home=home, redis_url=redis_url, accounts=accounts)


def stop(home: Path | None = None, log=print) -> list[str]:
    """Stop what ``serve`` started from ``home`` (by recorded pid); return their names."""
    home = Path(home or default_home()).expanduser().resolve()
    state = _read_state(home)
    stopped = []
    for name in ("worker", "server", "redis"):
        entry = state["processes"].get(name)
        if entry and _terminate(entry):
            stopped.append(name)
    if (home / STATE_NAME).exists():
        (home / STATE_NAME).unlink()
    log(f"Stopped: {', '.join(stopped)}" if stopped else f"Nothing from {home} was running.")
    return stopped


def running(home: Path | None = None) -> dict[str, int]:
    """Name -> pid of the processes from ``home`` that are still alive."""
    home = Path(home or default_home()).expanduser().resolve()
    return {n: e["pid"] for n, e in _read_state(home)["processes"].items() if _alive(e)}
