"""The import layers of the project, checked on the source text (no module is imported).

    schemas      the bottom layer: record types, errors, dead letters, the stage base, file helpers,
                 the image store, reading a build; imports nothing else of the project
    sources      readers and parsers; import only schemas
    annotation   Argilla integration; imports only schemas (reads builds, never runs Beam)
    pipelines    the build, publish, fetch and the CLI; may import all of the above

No package imports a package above it. On top of that, ``pipelines.publish`` and
``annotation`` never import Beam transforms (the build's stages or ``apache_beam``'s
pipeline machinery): they read finished builds and must stay light and Beam-free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = {"schemas": 0, "sources": 1, "annotation": 2, "pipelines": 3}
# what a reader of finished builds (publish, annotation) may not import
BEAM_STAGES = ("pipelines.transforms", "pipelines.build", "pipelines.clip", "pipelines.dedupe")
BEAM_ALLOWED = ("apache_beam.io.filesystems",)


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "argilla_ext" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute module names imported by ``path`` (at any depth: lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_import_runs_upward(package):
    upward = []
    for path in _modules(package):
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS[top] > LAYERS[package]:
                upward.append(f"{_where(path, line)} imports {name}")
    assert not upward, f"{package} must not import a layer above it:\n" + "\n".join(upward)


@pytest.mark.parametrize("package", ["annotation", "pipelines/publish"])
def test_build_readers_import_no_beam_stage(package):
    found = []
    for path in _modules(package):
        for line, name in _imports(path):
            if name.startswith(BEAM_STAGES) or (
                name.startswith("apache_beam") and not name.startswith(BEAM_ALLOWED)
            ):
                found.append(f"{_where(path, line)} imports {name}")
    assert not found, f"{package} reads finished builds; no Beam stage:\n" + "\n".join(found)


def test_the_check_sees_lazy_and_aliased_imports(tmp_path):
    """The checker itself: imports inside functions and ``import a.b as c`` are found,
    relative imports (within one package) are not counted."""
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nimport pipelines.build as b\nfrom . import sibling\n"
        "def f():\n    from annotation.push import push\n    return push\n"
    )
    assert [name for _, name in _imports(module)] == ["os", "pipelines.build", "annotation.push"]
