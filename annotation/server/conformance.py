"""Run argilla-server 2.8.0's own search-engine tests against mmloom's SQL search engine.

    python3 -m annotation.server.conformance [PYTEST_ARGS ...]      (make test-argilla-conformance)

Argilla's ``tests/unit/search_engine`` suite ships in the argilla-server sdist, not in the
wheel. This command:

1. makes sure the argilla-server venv exists (:func:`annotation.server.install.ensure_server_venv`);
2. downloads the pinned sdist ``argilla-server==2.8.0`` once with that venv's pip into
   ``~/.cache/mmloom/downloads/`` and checks it against :data:`SDIST_SHA256`;
3. builds a separate test venv (``~/.cache/mmloom/argilla-conformance``, or
   ``$MMLOOM_ARGILLA_CONFORMANCE_VENV``) with exactly the server venv's packages (its
   ``pip freeze`` as constraints) plus :data:`TEST_REQUIREMENTS` (pytest 7.4: pytest 8 rejects
   the suite's asyncio marks on fixtures); a stamp file names what it holds, so reruns
   reuse it;
4. unpacks the sdist's ``tests/`` into a temporary folder, puts
   ``argilla_ext/conformance/search_engine_conftest.py`` in place of
   ``tests/unit/search_engine/conftest.py`` (it swaps in mmloom's engine and deselects the
   tests that inspect Elasticsearch's own index, each listed with its reason), and runs
   pytest there on a fresh SQLite database. pytest's output, closing line included, is
   printed as it comes; the exit status is pytest's.

Only ``python3`` and the package index are needed; no Elasticsearch and no Redis.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from annotation.server import install

SDIST_REQUIREMENT = "argilla-server==2.8.0"
SDIST_NAME = "argilla_server-2.8.0.tar.gz"
SDIST_SHA256 = "c3ca464f7e024d1232fde23dbd6014e2c82a7cebd0382de03d7cb3cfae71e4b0"
SDIST_ROOT = "argilla_server-2.8.0"
SUITE = "tests/unit/search_engine"
TEST_REQUIREMENTS = (
    "pytest==7.4.4",
    "pytest-asyncio==0.21.2",
    "pytest-mock==3.17.0",
    "pytest-env==1.1.3",
    "factory-boy==3.2.1",
    "Faker==40.63.0",
)
EXT_DIR = Path(__file__).resolve().parent / "argilla_ext"
CONFTEST = EXT_DIR / "conformance" / "search_engine_conftest.py"
STAMP_NAME = ".mmloom-conformance"


class ConformanceError(RuntimeError):
    """The conformance run could not be set up; the message says what to do."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mmloom`` or ``~/.cache/mmloom``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmloom"


def default_test_venv() -> Path:
    """Where the test venv lives: ``$MMLOOM_ARGILLA_CONFORMANCE_VENV`` or the user cache."""
    env = os.environ.get("MMLOOM_ARGILLA_CONFORMANCE_VENV")
    return Path(env).expanduser() if env else cache_dir() / "argilla-conformance"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(cmd: list[str], what: str) -> str:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-20:])
        raise ConformanceError(
            f"{what} failed ({' '.join(cmd[:5])} ...):\n{tail}\n"
            "Check that the package index is reachable (pip config / UV_INDEX_URL)."
        )
    return result.stdout


def ensure_sdist(server_python: Path, log=print) -> Path:
    """Return the cached, checksum-verified argilla-server 2.8.0 sdist, downloading it once."""
    downloads = cache_dir() / "downloads"
    target = downloads / SDIST_NAME
    if target.exists() and _sha256(target) == SDIST_SHA256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    log(f"Downloading the {SDIST_REQUIREMENT} sdist (its test suite) ...")
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as tmp:
        _run(
            [str(server_python), "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", SDIST_REQUIREMENT, "--dest", tmp],
            f"Downloading {SDIST_REQUIREMENT}",
        )  # fmt: skip
        got = Path(tmp) / SDIST_NAME
        if not got.exists():
            raise ConformanceError(
                f"pip did not download {SDIST_NAME}; the index may lack the {SDIST_REQUIREMENT} "
                "sdist."
            )
        digest = _sha256(got)
        if digest != SDIST_SHA256:
            raise ConformanceError(
                f"The downloaded {SDIST_NAME} has sha256 {digest}, not the pinned "
                f"{SDIST_SHA256}; the index served a different file. Check your package index."
            )
        got.replace(target)
    return target


def _installer(python: Path) -> list[str]:
    try:
        import uv  # noqa: F401

        return [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
    except ImportError:
        return [str(python), "-m", "pip", "install", "--quiet"]


def ensure_test_venv(server_python: Path, venv: Path | None = None, log=print) -> Path:
    """Create (or reuse) the test venv: the server venv's packages plus the test tools.

    Returns:
        The test venv's ``python``.
    """
    venv = Path(venv or default_test_venv())
    freeze = _run(
        [str(server_python), "-m", "pip", "freeze", "--exclude-editable"],
        "Listing the argilla-server venv's packages",
    )
    pins = sorted(
        line.strip()
        for line in freeze.splitlines()
        if line.strip() and not line.startswith(("#", "-e "))
    )
    stamp_text = "\n".join([*pins, *TEST_REQUIREMENTS, sys.version.split()[0]]) + "\n"
    python = venv / "bin" / "python"
    stamp = venv / STAMP_NAME
    if python.exists() and stamp.exists() and stamp.read_text() == stamp_text:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / (venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == stamp_text:
            return python
        log(f"Building the conformance test venv in {venv} (first run only) ...")
        if stamp.exists():
            stamp.unlink()  # a half-updated venv must not look current
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)], "Creating the test venv")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(pins) + "\n")
            constraints = f.name
        try:
            _run(
                [*_installer(python), "-c", constraints, *pins, *TEST_REQUIREMENTS],
                "Installing the conformance test venv",
            )
        finally:
            os.unlink(constraints)
        stamp.write_text(stamp_text)
    return python


def _unpack_suite(sdist: Path, dest: Path) -> None:
    """Extract the sdist's ``tests/`` and ``pyproject.toml`` (pytest's settings) into ``dest``."""
    prefix = SDIST_ROOT + "/"
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix) :]
            if rel == "pyproject.toml" or rel.startswith("tests/"):
                member.name = rel
                members.append(member)
        for member in members:
            unsafe = member.name.startswith("/") or ".." in Path(member.name).parts
            if unsafe or not (member.isfile() or member.isdir()):
                raise ConformanceError(f"{sdist} holds an unexpected entry {member.name!r}.")
        tar.extractall(dest, members=members)
    shutil.copyfile(CONFTEST, dest / SUITE / "conftest.py")


def run(pytest_args: list[str] | None = None, log=print) -> int:
    """Set everything up and run the suite; return pytest's exit status."""
    server_python = install.ensure_server_venv(log=log)
    sdist = ensure_sdist(server_python, log=log)
    test_python = ensure_test_venv(server_python, log=log)
    work = Path(tempfile.mkdtemp(prefix="mmloom-argilla-conformance-"))
    try:
        _unpack_suite(sdist, work)
        home = work / "argilla-home"
        home.mkdir()
        db = home / "argilla.db"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not k.startswith(("ARGILLA_", "MMLOOM_"))
        }
        env.update(
            PYTHONPATH=str(EXT_DIR),
            ARGILLA_HOME_PATH=str(home),
            ARGILLA_DATABASE_URL=f"sqlite+aiosqlite:///file:{db}?cache=shared&uri=true",
            ARGILLA_SEARCH_ENGINE="mmloom-sql",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_OFFLINE="1",
        )
        log(f"Running argilla-server 2.8.0's {SUITE} against mmloom-sql ...")
        cmd = [
            str(test_python), "-m", "pytest", SUITE, "-p", "no:cacheprovider",
            "-o", "log_cli=false", "-q", *(pytest_args or []),
        ]  # fmt: skip
        return subprocess.run(cmd, cwd=work, env=env).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point; set-up failures print one message and return 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return run(args)
    except (ConformanceError, install.InstallError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
