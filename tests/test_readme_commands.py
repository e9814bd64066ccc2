"""README.md's commands work as printed, and the files and anchors it names exist (issue 22,
item 5).

Every shell block (```bash, ```sh, ```shell) follows a marker line:

* ``<!-- runnable -->``: a user can run it on the bundled sample after ``make demo``. The test
  runs these blocks in README order, each as one ``bash -euo pipefail`` script, in a
  temporary folder laid out like the checkout after ``make demo`` (``out/sample`` built,
  ``out/release`` published, ``configs/``, ``sample/`` and ``.venv`` as in the checkout), with
  the project's venv first on PATH, the checkout's code on PYTHONPATH and a fresh HOME.
* ``<!-- not-runnable: REASON -->``: it needs what a test may not use (the network, a cloud
  project, a running Argilla with people at it, installing the venv) or is a synopsis; the
  reason says which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.publish.cli import main as publish_main
from tests.conftest import REPO

README = REPO / "README.md"
SHELLS = ("bash", "sh", "shell")
MARKER = re.compile(r"^<!-- (?:(runnable)|not-runnable: (\S.*?)) -->$")
# repository paths the README names in prose and code spans (placeholders such as
# sources/<name>/ stop the match before the "<", so they are not checked)
TOP = "docs|sources|bench|tests|tools|pipelines|schemas|annotation|configs|scripts|sample"
PATH_REF = re.compile(rf"(?<![\w/.~-])((?:{TOP})/[A-Za-z0-9_./-]*[A-Za-z0-9_/])(?![\w<{{*…])")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# paths the README names in another project's tree, not this repository's
ELSEWHERE = {"tests/unit/search_engine": "argilla-server's own suite, in its sdist"}


def shell_blocks(text: str) -> list[tuple[int, str, str | None, str]]:
    """``(line, marker, reason, body)`` of every shell block; marker is ``runnable``,
    ``not-runnable`` or ``""`` (none)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```") and fence[3:].strip():
            info = fence[3:].strip().split()[0]
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if info in SHELLS:
                prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                m = MARKER.match(prev.strip())
                marker = "" if m is None else ("runnable" if m[1] else "not-runnable")
                reason = None if m is None else m[2]
                blocks.append((i + 1, marker, reason, "\n".join(lines[i + 1 : end])))
            i = end + 1
        elif fence.startswith("```"):  # a plain fence: skip to its end
            i = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```") + 1
        else:
            i += 1
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lstrip("#").strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text("utf-8"), flags=re.M | re.S)
    return {slug(line) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_every_shell_block_is_marked():
    blocks = shell_blocks(README.read_text("utf-8"))
    assert len(blocks) >= 8
    unmarked = [line for line, marker, _, _ in blocks if not marker]
    assert unmarked == [], f"README.md shell blocks without a runnable marker, lines {unmarked}"
    assert any(marker == "runnable" for _, marker, _, _ in blocks)
    for line, marker, reason, _ in blocks:
        assert marker == "runnable" or (reason and len(reason) > 10), line


def test_marker_parsing():
    text = (
        "<!-- runnable -->\n```bash\necho a\n```\n\n```text\n```bash\n```\n"
        "<!-- not-runnable: needs the network -->\n\n```sh\nmmloom fetch\n```\n```bash\nx\n```\n"
    )
    assert shell_blocks(text) == [
        (2, "runnable", None, "echo a"),
        (11, "not-runnable", "needs the network", "mmloom fetch"),
        (14, "", None, "x"),
    ]
    assert slug("## Build from the real datasets") == "build-from-the-real-datasets"
    assert slug("### `mmie/` and CLIP: a test") == "mmie-and-clip-a-test"


def test_every_file_and_anchor_the_readme_names_exists():
    text = README.read_text("utf-8")
    refs = set(PATH_REF.findall(text))
    assert {"docs/mmie-method.md", "bench/RESULTS.md", "sources/vist/README.md"} <= refs
    missing = []
    for ref in sorted(refs):
        if ref not in ELSEWHERE and not (REPO / ref.rstrip("/")).exists():
            missing.append(ref)
    own = anchors(README)
    for target in sorted(set(LINK.findall(text))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path if path else README
        if not file.exists():
            missing.append(target)
            continue
        if anchor and file.suffix == ".md" and anchor not in (anchors(file) if path else own):
            missing.append(target)
    assert missing == []


@pytest.fixture
def demo_checkout(sample_build, tmp_path) -> Path:
    """A folder laid out like the checkout after ``make demo``: out/sample and out/release."""
    root = tmp_path / "checkout"
    (root / "out").mkdir(parents=True)
    shutil.copytree(REPO / "configs", root / "configs")
    for name in ("sample", ".venv"):
        (root / name).symlink_to(REPO / name)
    (root / "out" / "models").symlink_to(REPO / "out" / "models")
    shutil.copytree(sample_build, root / "out" / "sample")
    argv = ["--build", str(root / "out/sample"), "--output", str(root / "out/release")]
    assert publish_main([*argv, "--version", "0.1.0"]) == 0
    (root / "home").mkdir()
    return root


def test_runnable_blocks_run_on_the_sample(demo_checkout, tiny_clip_checkpoint):
    runnable = [b for b in shell_blocks(README.read_text("utf-8")) if b[1] == "runnable"]
    assert runnable
    env = dict(
        os.environ,
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(REPO),  # the checkout's code, whatever the venv was installed from
        HOME=str(demo_checkout / "home"),
    )
    for line, _, _, body in runnable:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=demo_checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert run.returncode == 0, f"README.md line {line}:\n{body}\n{run.stdout}\n{run.stderr}"
        assert "Traceback" not in run.stderr, f"README.md line {line}: {run.stderr}"
