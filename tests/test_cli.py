"""The ``mmloom`` command line: one parser, every command listed, help without heavy imports.

Speed itself is measured by ``bench/cli_latency.py`` (no timing thresholds in tests); what is
tested here is its cause: answering ``--help`` imports no Beam, torch, pyarrow, Argilla or
matplotlib.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import pipelines
from pipelines.cli import main
from tests.conftest import REPO

HEAVY = ("apache_beam", "torch", "pyarrow", "argilla", "matplotlib", "datasets")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )


COMMANDS = ("build", "show", "verify", "fetch", "annotate", "publish")


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommands registered on the parser (not words found in its help text)."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_every_command_is_registered_and_listed(capsys):
    from pipelines.cli import make_parser

    assert sorted(_commands(make_parser())) == sorted(COMMANDS)
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out.split("positional arguments:", 1)[1]
    for command in COMMANDS:
        assert f"\n    {command} " in listed, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_its_help(command, capsys):
    try:
        code = main([command, "--help"])
    except SystemExit as exc:
        code = exc.code or 0
    assert code == 0
    out = capsys.readouterr().out
    assert f"mmloom {command}" in out.split("\n")[0], out[:300]  # its own help, not mmloom's


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mmloom {pipelines.__version__}"


def test_unknown_command_and_stray_flags_are_usage_errors(capsys):
    assert main(["bulid"]) == 2
    assert "invalid choice: 'bulid'" in capsys.readouterr().err
    assert main(["show", "out", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["build", "--help"],
        ["show", "--help"],
        ["verify", "--help"],
        ["publish", "--help"],
        ["fetch", "--help"],
        ["annotate", "--help"],
        ["annotate", "serve", "--help"],
        ["annotate", "push", "--help"],
        ["annotate", "pull", "--help"],
    ],
)
def test_help_imports_nothing_heavy(argv):
    run = _run(
        "import sys\n"
        "from pipelines.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stderr, run.stderr
    assert "usage:" in run.stdout or "mmloom annotate" in run.stdout


def _undocumented(parser: argparse.ArgumentParser, name: str) -> list[str]:
    """Options (of ``parser`` and its subcommands, recursively) without help text."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _undocumented(sub, f"{name} {sub_name}")
        elif action.option_strings and action.dest != "help" and not action.help:
            out.append(f"{name} {action.option_strings[0]}")
    return out


def test_every_option_is_documented():
    from annotation import round_args
    from annotation.server import cli as server_cli
    from pipelines.cli import make_parser
    from pipelines.fetch import cli as fetch_cli

    undocumented = (
        _undocumented(make_parser(), "mmloom")
        + _undocumented(fetch_cli.build_parser(), "mmloom fetch")
        + _undocumented(round_args.build_parser(), "mmloom annotate")
        + _undocumented(server_cli.build_parser(), "mmloom annotate")
    )
    assert not undocumented, undocumented


def test_a_missing_config_path_is_never_suggested_again(tmp_path, monkeypatch, capsys):
    """Run from a folder without configs/: the message points at what exists, not at the
    same missing path (issue 13)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("version: 1\n")
    missing = "configs/sample.yaml"
    assert main(["build", "--config", missing, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"config file {missing} does not exist" in err
    hint = err.split("does not exist;", 1)[1]
    assert f" {missing}," not in hint and not hint.rstrip().endswith(f" {missing}")
    assert "./mine.yaml" in hint  # what the user has here
    assert str(REPO / "configs" / "sample.yaml") in hint  # the example, by a path that works
