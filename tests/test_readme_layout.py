"""The README's Layout section names every top-level part of the tree, and only real ones."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO


def _layout_names() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    names = set()
    for line in block.splitlines():
        m = re.match(r"^(\S+)", line)
        if m:
            names.add(m.group(1).split("/", 1)[0])
    return names


def test_layout_names_exactly_the_top_level_of_the_tree():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    top = {p.split("/", 1)[0] for p in tracked if not p.startswith(".")}
    documented = _layout_names()
    # files at the root that need no line of their own
    plain = {"README.md", "pyproject.toml"}
    assert documented - top == set(), "the Layout section names what does not exist"
    assert top - documented - plain == set(), "the Layout section misses part of the tree"
