"""Issue 22: every user-facing error of ``mmloom`` is one message and exit status 2, a bug is
one line and exit status 1, and a traceback shows only with ``--debug``; flags are never
silently wrong (no abbreviations, no unknown flag passed to Beam); ``show``'s dead letters,
one record and one image.

Most tests run the real command in a child process (``python -m pipelines.cli``), the way a
user meets it; none reaches the network (the Argilla stand-ins listen on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.pipelines.tinybuild import write_tiny_build


def _mmloom(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *argv],
        cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def _one_message(run: subprocess.CompletedProcess, command: str) -> str:
    """The one error line of a user's error (exit 2, no traceback)."""
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith(f"mmloom {command}: error: "), lines
    return lines[0]


# ------------------------------------------------------------------ unwritable places: one message


@pytest.mark.parametrize("where", ["a file", "/proc/nope"])
def test_fetch_into_a_file_or_an_unwritable_folder_is_one_message(tmp_path, where):
    to = tmp_path / "a-file" if where == "a file" else Path(where)
    if where == "a file":
        to.write_text("not a folder\n")
    run = _mmloom("fetch", "coco", "--to", str(to))
    line = _one_message(run, "fetch")
    assert "could not write the fetched files" in line and str(to) in line
    if where == "a file":
        assert to.read_text() == "not a folder\n"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written in: a read-only tmpfs where root may mount one (root
    ignores permission bits), a mode-0555 folder for anyone else."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_build_into_proc_or_a_read_only_folder_is_one_message(read_only_folder):
    for out in ("/proc/xx", str(read_only_folder / "out")):
        run = _mmloom("build", "--config", str(SAMPLE_CONFIG), "--output", out, "--no-clip")
        line = _one_message(run, "build")
        assert f"cannot write --output {out}" in line and "choose an --output" in line
    assert os.listdir(read_only_folder) == []


# -------------------------------------------------------------------------- flags never go silent


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("--no-clpi", "--no-clip"), ("--overwrit", "--overwrite"), ("--runne", "--runner")],
)
def test_a_mistyped_build_flag_is_an_error_before_anything_runs(tmp_path, typo, meant):
    """``--no-clpi`` used to become Beam's "Discarding unparseable args" warning and CLIP ran;
    ``--overwrit`` was taken for ``--overwrite`` by prefix matching."""
    out = tmp_path / "out"
    argv = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(out), typo]
    run = _mmloom(*argv, *(["DirectRunner"] if typo == "--runne" else []))
    line = _one_message(run, "build")
    assert f"unrecognized arguments: {typo}" in line and f"did you mean {meant}?" in line
    assert "Discarding unparseable args" not in run.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_a_stray_word_or_a_bad_beam_value_is_an_error(tmp_path):
    base = ["build", "--config", str(SAMPLE_CONFIG), "--output", str(tmp_path / "out")]
    line = _one_message(_mmloom(*base, "extra"), "build")
    assert "unrecognized arguments: extra" in line
    line = _one_message(_mmloom(*base, "--direct_num_workers", "many"), "build")
    assert "--direct_num_workers: invalid int value: 'many'" in line
    assert os.listdir(tmp_path) == []


def test_flags_beam_recognises_pass_in_both_spellings(tmp_path, capsys):
    """Beam's options (``--flag value`` or ``--flag=value``) pass the check: what stops this
    build is its missing config, reported after the flags were accepted."""
    argv = ["build", "--config", str(tmp_path / "none.yaml"), "--output", str(tmp_path / "o")]
    argv += ["--runner=DirectRunner", "--direct_num_workers", "2", "--project", "p"]
    argv += ["--temp_location=gs://bucket/tmp", "--experiments", "a", "--experiments=b"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "none.yaml does not exist" in err and "unrecognized" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "DIR", "--lim", "1"],
        ["verify", "DIR", "--quic"],
        ["publish", "--buil", "DIR", "--output", "o", "--version", "1.0.0"],
        ["build", "--conf", "c.yaml", "--output", "o"],
        ["fetch", "coco", "--t", "DIR"],
        ["fetch", "coco", "--to", "DIR", "--no-prog"],
        ["annotate", "push", "--buil", "DIR", "--dataset", "x"],
        ["annotate", "pull", "--dataset", "x", "--out", "o"],
        ["annotate", "serve", "--hom", "h"],
        ["--vers"],
    ],
)
def test_no_flag_may_be_abbreviated(argv, tmp_path, capsys):
    argv = [str(tmp_path) if a == "DIR" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "required" in err, err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_no_arguments_print_the_help_and_exit_2():
    run = _mmloom()
    assert run.returncode == 2
    assert "usage: mmloom" in run.stderr and "COMMAND" in run.stderr
    assert "Traceback" not in run.stderr
    run = _mmloom("annotate")
    assert run.returncode == 2 and "usage: mmloom annotate" in run.stderr


# ------------------------------------------------------------------------ --debug, and bugs


def test_debug_adds_the_traceback_to_a_user_error_with_every_command(tmp_path):
    missing = str(tmp_path / "missing")
    plain = _mmloom("show", missing)
    line = _one_message(plain, "show")
    debug = _mmloom("--debug", "show", missing)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == line  # the same message, last
    # fetch and annotate parse their own flags: --debug works anywhere on their line too
    target = tmp_path / "a-file"
    target.write_text("")
    fetch = _mmloom("fetch", "coco", "--to", str(target), "--debug")
    assert fetch.returncode == 2 and "Traceback (most recent call last)" in fetch.stderr
    annotate = _mmloom("annotate", "status", "--dataset", "x", "--debug",
                       env={"ARGILLA_API_URL": "", "ARGILLA_API_KEY": ""})  # fmt: skip
    assert annotate.returncode == 2 and "Traceback (most recent call last)" in annotate.stderr
    assert "ARGILLA_API_URL and ARGILLA_API_KEY not set" in annotate.stderr.splitlines()[-1]


_BUGGY = (
    "import sys\n"
    "import schemas.verify\n"
    "def verify(path, full=True):\n"
    "    return {}['a key nobody set']  # a bug, as a command could have one\n"
    "schemas.verify.verify = verify\n"
    "from pipelines.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_bug_is_one_line_saying_so_with_exit_1(tmp_path):
    """An exception no command turned into a message is a bug: exit status 1 (a user's error
    is 2), one line naming it, where to report it and how to see the traceback."""
    run = subprocess.run(
        [sys.executable, "-c", _BUGGY, "verify", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("mmloom verify: internal error (KeyError: 'a key nobody set')")
    assert "this is a bug in mmloom" in line and "report it" in line
    assert "rerun it with --debug" in line
    debug = subprocess.run(
        [sys.executable, "-c", _BUGGY, "verify", str(tmp_path), "--debug"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "KeyError" in debug.stderr


# ------------------------------------------------------------- Argilla that does not answer


@pytest.fixture
def hanging_up_server():
    """A server on 127.0.0.1 that accepts every connection and closes it at once."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


@pytest.mark.slow  # whole `mmloom build` runs: the full tier
def test_an_argilla_that_hangs_up_is_one_message(hanging_up_server, tmp_path):
    pytest.importorskip("argilla")
    build = write_tiny_build(tmp_path / "build")
    env = {"ARGILLA_API_URL": hanging_up_server, "ARGILLA_API_KEY": "a-key-never-printed"}
    for argv in (
        ["status", "--dataset", "x"],
        ["pull", "--dataset", "x", "--output", str(tmp_path / "pulled")],
        ["push", "--build", str(build), "--dataset", "x", "--image-base", "http://127.0.0.1:9"],
    ):
        run = _mmloom("annotate", *argv, env=env)
        line = _one_message(run, "annotate")
        assert f"the Argilla server at {hanging_up_server} does not answer" in line
        assert f"curl {hanging_up_server}/api/v1/version" in line
        assert "mmloom annotate serve" in line and "run the same command again" in line
        assert "a-key-never-printed" not in run.stdout + run.stderr
    assert not (tmp_path / "pulled").exists()


# ------------------------------------------------------------------------------------- show


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny build: six MSR records and one dead letter (remi, malformed_row)."""
    return write_tiny_build(tmp_path_factory.mktemp("show") / "build")


def test_show_id_prints_one_object(tiny, capsys):
    assert main(["show", str(tiny), "--id", "MSR_tiny_test_3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert isinstance(shown, dict) and shown["id"] == "MSR_tiny_test_3"
    assert main(["show", str(tiny), "--id", "MSR_tiny_test_3", "--jsonl"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == "MSR_tiny_test_3"
    assert main(["show", str(tiny), "--id", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no record with id nope" in err and "--jsonl` lists its records" in err


def test_show_dead_letters_lists_and_filters(tiny, capsys):
    assert main(["show", str(tiny), "--dead-letters"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    letter = json.loads(line)
    assert letter["source"] == "remi" and letter["reason"] == "malformed_row"
    for flags in (["--reason", "malformed_row"], ["--source", "remi"], ["--reason",
                  "malformed_row", "--source", "remi"]):  # fmt: skip
        assert main(["show", str(tiny), "--dead-letters", *flags]) == 0
        assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == [letter]
    assert main(["show", str(tiny), "--dead-letters", "--reason", "image_missing"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "reasons there: malformed_row 1" in captured.err  # what is there, not an error
    assert main(["show", str(tiny), "--dead-letters", "--source", "vist"]) == 0
    assert "sources with dead letters: remi" in capsys.readouterr().err
    assert main(["show", str(tiny), "--dead-letters", "--limit", "0"]) == 0
    assert capsys.readouterr().out == ""


def test_show_dead_letter_flags_are_checked(tiny, capsys):
    assert main(["show", str(tiny), "--reason", "malformed_row"]) == 2
    assert "add --dead-letters" in capsys.readouterr().err
    assert main(["show", str(tiny), "--dead-letters", "--id", "x", "--summary"]) == 2
    assert "leave out --id, --summary" in capsys.readouterr().err


def test_show_image_refuses_a_terminal(tiny):
    """``show --image`` writes bytes: to a terminal it refuses (one message, exit 2), to a
    file it writes them."""
    shown = _mmloom("show", str(tiny), "--id", "MSR_tiny_test_0")
    path = json.loads(shown.stdout)["images"][0]["path"]
    primary, secondary = pty.openpty()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "show", str(tiny), "--image", path],
            cwd=REPO, stdout=secondary, stderr=subprocess.PIPE, text=True, timeout=300,
        )  # fmt: skip
    finally:
        os.close(secondary)
        os.close(primary)
    line = _one_message(run, "show")
    assert "a terminal cannot show" in line and f"--image {path} > image.jpg" in line
    to_file = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "show", str(tiny), "--image", path],
        cwd=REPO, capture_output=True, timeout=300,
    )  # fmt: skip
    assert to_file.returncode == 0
    assert to_file.stdout == (tiny / path).read_bytes()
