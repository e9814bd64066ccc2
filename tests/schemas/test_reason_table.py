"""README.md's dead-letter reason table is generated from the stages' Reason enums
(tools/reason_table.py), and the enums list the reasons the stages' pure code raises."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines.transforms.images import LoadImages
from pipelines.transforms.io import WriteRecords
from schemas.stage import StageReason
from tools import reason_table

REPO = Path(__file__).resolve().parent.parent.parent


def test_readme_reason_table_matches_the_enums():
    readme = reason_table.README.read_text(encoding="utf-8")
    start, end = readme.find(reason_table.START), readme.find(reason_table.END)
    assert start >= 0 and end > start, "README.md lost its reason-table markers"
    current = readme[start : end + len(reason_table.END)]
    assert current == reason_table.block(), (
        "README.md's dead-letter reason table differs from the stages' Reason enums; run "
        "`python -m tools.reason_table --write` and commit README.md"
    )


def test_every_stage_is_in_the_table():
    table = reason_table.table()
    for cls in reason_table.stage_classes():
        for reason in cls.reasons():
            assert f"| `{cls.stage}` | `{reason.value}` |" in table, (cls, reason)
    assert "| every stage | `unexpected_error` |" in table


class _Reasons(StageReason):
    DOCUMENTED = "documented", "what it means"
    BARE = "bare"


def _FakeStage(stage: str, reasons: list[StageReason]) -> type:
    """A class with only what ``rows`` reads of a stage class (not a RecordStage, so the
    stage registry never sees it)."""
    return type(
        "FakeStage",
        (),
        {"stage": stage, "more_reasons": "", "reasons": classmethod(lambda cls: reasons)},
    )


def test_a_reason_without_meaning_is_an_error():
    with pytest.raises(ValueError, match="BARE has no meaning"):
        reason_table.rows([_FakeStage("validate", [_Reasons.DOCUMENTED, _Reasons.BARE])])


def test_a_stage_outside_the_stage_list_is_an_error():
    with pytest.raises(ValueError, match="not in STAGES"):
        reason_table.rows([_FakeStage("somewhere", [_Reasons.DOCUMENTED])])


def test_reason_members_are_their_strings():
    assert _Reasons.DOCUMENTED == "documented"
    assert str(_Reasons.DOCUMENTED) == "documented"
    assert type(str(_Reasons.DOCUMENTED)) is str
    assert _Reasons.DOCUMENTED.doc == "what it means"


def _raised_reasons(path: Path) -> set[str]:
    """Every reason string a ``RecordError(...)`` in ``path`` can carry: a literal first
    argument, or the string constants (and module-level dict values they look up) of the
    expression assigned to the name passed."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    dicts = {
        target.id: [v.value for v in node.value.values if isinstance(v, ast.Constant)]
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def strings(expr: ast.AST) -> set[str]:
        """The strings ``expr`` can be: a literal, either side of ``a if c else b``, or
        ``TABLE.get(key, default)`` (the table's values and the default)."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return strings(expr.body) | strings(expr.orelse)
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and isinstance(expr.func.value, ast.Name)
            and expr.func.value.id in dicts
            and expr.func.attr == "get"
        ):
            return set(dicts[expr.func.value.id]).union(*(strings(a) for a in expr.args[1:]))
        raise AssertionError(f"line {expr.lineno}: a reason the test cannot follow")

    found: set[str] = set()
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        assigned: dict[str, list[ast.AST]] = {}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "RecordError"
                and node.args
            ):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                found.add(arg.value)
            elif isinstance(arg, ast.Name):
                for value in assigned.get(arg.id, []):
                    found |= strings(value)
    return found


@pytest.mark.parametrize(
    ("stage", "path"),
    [(LoadImages, "pipelines/images.py"), (WriteRecords, "schemas/parquet.py")],
)
def test_the_enum_lists_every_reason_the_pure_code_raises(stage, path):
    raised = _raised_reasons(REPO / path)
    assert raised, f"found no RecordError in {path}"
    assert raised <= {r.value for r in stage.reasons()}, raised - set(stage.reasons())
