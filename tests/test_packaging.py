"""The distribution Dataflow workers install (`--setup_file ./setup.py`, i.e. `pip install .`).

Workers need the build's stages and nothing of the annotation round or the release report:
no argilla, krippendorff or matplotlib unless an extra asks for them, and the Argilla server
plugin is no package of theirs (it ships as data for `mmloom annotate serve`).
"""

from __future__ import annotations

import ast
import email
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

NOT_ON_WORKERS = ("argilla", "krippendorff", "matplotlib")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the tracked tree: setuptools builds in place (build/, *.egg-info), and the
    # checkout stays clean
    src = tmp_path_factory.mktemp("src") / "mmloom"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(out), str(src)], check=True, cwd=src, timeout=600)
    (path,) = out.glob("mmloom-*.whl")
    return path


def _requires(wheel_path) -> list[str]:
    with zipfile.ZipFile(wheel_path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(z.read(meta)).get_all("Requires-Dist") or []


def test_worker_install_has_no_annotation_or_report_stack(wheel):
    required = _requires(wheel)
    core = [r for r in required if "extra ==" not in r]
    assert any(r.startswith("apache-beam") for r in core)
    for name in NOT_ON_WORKERS:
        assert not [r for r in core if r.lower().startswith(name)], f"{name} is not optional"
        extras = [r for r in required if r.lower().startswith(name) and "extra ==" in r]
        assert extras, f"{name} is in no extra"


def test_worker_package_holds_the_stages_but_not_the_argilla_plugin(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for module in (
            "pipelines/build.py",
            "schemas/store.py",
            "schemas/record.schema.json",
            "sources/vist/fields.yaml",
            "sources/coco/checksums.tsv",
            "pipelines/publish/templates/card.md.j2",  # the card and report templates
            "pipelines/publish/templates/report.html.j2",
        ):
            assert module in names, module
        # each source is one folder: its data files travel with it (sources/spec.py)
        for source in ("vist", "wikihow", "mathvista", "remi", "coco"):
            for data in ("card.yaml", "config.schema.json", "checksums.tsv", "CITATION.bib"):
                assert f"sources/{source}/{data}" in names, (source, data)
            assert f"sources/{source}/fetch.py" in names, source
        assert "sources/spec.py" in names
        plugin = [n for n in names if "argilla_ext" in n]
        assert "annotation/server/argilla_ext/mmloom_argilla_sql/engine.py" in plugin
        assert all(n.startswith("annotation/server/argilla_ext/") for n in plugin)
        # no module of the worker package imports argilla-server (only the plugin, which runs
        # in argilla-server's own environment)
        for name in sorted(names - set(plugin)):
            if name.endswith(".py"):
                tree = ast.parse(z.read(name))
                for node in ast.walk(tree):
                    mods = (
                        [a.name for a in node.names]
                        if isinstance(node, ast.Import)
                        else [node.module or ""]
                        if isinstance(node, ast.ImportFrom)
                        else []
                    )
                    assert not any(m.startswith("argilla_server") for m in mods), name


@pytest.mark.parametrize(
    ("argv", "missing", "extra"),
    [
        # (--help answers before any import: a real run is what needs the report stack)
        (["publish", "--build", "b", "--output", "r", "--version", "1"], "matplotlib", "report"),
        (["annotate", "status", "--dataset", "x"], "argilla", "annotate"),
        (["annotate", "pull", "--dataset", "x", "--output", "y"], "krippendorff", "annotate"),
    ],
)
def test_a_command_whose_extra_is_missing_says_what_to_install(argv, missing, extra):
    """As on a worker-only install: the package is absent, the command says which extra."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from pipelines.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 2, run.stderr
    assert f"pip install 'mmloom[{extra}]'" in run.stderr
