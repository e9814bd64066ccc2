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


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("build", "show", "verify", "fetch", "annotate", "publish"):
        assert command in out


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
        ["annotate", "stop", "--help"],
        ["annotate", "users", "--help"],
        ["annotate", "push", "--help"],
        ["annotate", "status", "--help"],
        ["annotate", "pull", "--help"],
        ["annotate", "images", "--help"],
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
    """What ``parser`` and its subcommands (recursively) leave undocumented or loose: options
    and positionals without help text, subcommands without a one-line help or a
    description, and parsers that accept abbreviated options."""
    out = [] if parser.allow_abbrev is False else [f"{name}: allow_abbrev"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                if not helps.get(sub_name):
                    out.append(f"{name} {sub_name}: no help")
                if not sub.description and sub.add_help:  # delegated ones describe themselves
                    out.append(f"{name} {sub_name}: no description")
                out += _undocumented(sub, f"{name} {sub_name}")
        elif action.dest not in ("help", "rest") and not action.help:
            out.append(f"{name} {(action.option_strings or [action.dest])[0]}")
    return out


def _every_parser() -> dict[str, argparse.ArgumentParser]:
    from annotation import cli as annotate_cli
    from annotation import round_args
    from annotation.server import cli as server_cli
    from pipelines.cli import make_parser
    from pipelines.fetch import cli as fetch_cli
    from pipelines.publish import cli as publish_cli

    return {
        "mmloom": make_parser(),
        "mmloom fetch": fetch_cli.build_parser(),
        "mmloom annotate": annotate_cli.build_parser(),
        "mmloom annotate (round)": round_args.build_parser(),
        "mmloom annotate (server)": server_cli.build_parser(),
        "mmloom publish (standalone)": publish_cli.parser(),
    }


def test_every_option_and_subcommand_is_documented_and_none_is_abbreviated():
    undocumented = [item for name, p in _every_parser().items() for item in _undocumented(p, name)]
    assert not undocumented, undocumented


def test_annotate_help_lists_every_subcommand_in_plain_words(capsys):
    """``mmloom annotate --help`` used to print a raw docstring (reST backticks included)."""
    from annotation import round_args
    from annotation.server import cli as server_cli

    assert main(["annotate", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mmloom annotate") and "``" not in out
    for parser in (round_args.build_parser(), server_cli.build_parser()):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for choice in sub._choices_actions:  # "NAME  its one-line help", however wrapped
            assert f"{choice.dest} {' '.join(choice.help.split())}" in " ".join(out.split())
    for command in ("push", "status", "pull", "images", "serve", "stop", "users"):
        assert main(["annotate", command, "--help"]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: mmloom annotate {command}") and "``" not in text


def test_debug_is_documented_and_accepted_anywhere(capsys):
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out
    for argv in (["--debug", "--version"], ["--version", "--debug"]):
        assert main(argv) == 0
        assert capsys.readouterr().out.strip() == f"mmloom {pipelines.__version__}"


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
