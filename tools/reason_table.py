"""Generate README.md's dead-letter reason table from the stages' ``Reason`` enums.

    python -m tools.reason_table           # print the Markdown table
    python -m tools.reason_table --write   # replace the table in README.md

One row per reason, stages in pipeline order (``schemas.deadletter.STAGES``), each stage's
reasons in the order its :class:`schemas.stage.StageReason` enum declares them, with the
meaning the enum gives. The enums are the source of truth: a reason without a meaning, or a
stage whose name is not in ``STAGES``, is an error, and ``tests/schemas/test_reason_table.py``
fails when README.md's table (between the ``reason-table`` markers) differs from this output.
"""

from __future__ import annotations

import importlib
import sys

from schemas.deadletter import STAGES
from schemas.stage import UNEXPECTED_ERROR, UNEXPECTED_ERROR_DOC, RecordStage, StageReason
from tools.config_table import README as README  # where the table lives
from tools.config_table import format_text, table_main

START = "<!-- reason-table:start -->"
END = "<!-- reason-table:end -->"
NOTE = (
    "<!-- generated from the stages' Reason enums by `python -m tools.reason_table --write`; "
    "do not edit -->"
)

# every module that defines a RecordStage (imported so that each subclass is registered)
STAGE_MODULES = (
    "sources.base",  # the readers and the restructure hook they call
    "pipelines.transforms.images",
    "pipelines.transforms.validate",
    "pipelines.clip.score",
    "pipelines.clip.skip",
    "pipelines.dedupe.stages",
    "pipelines.clip.filter",
    "pipelines.audit.blind",
    "pipelines.audit.blind_flag",
    "pipelines.audit.stages",
    "pipelines.audit.label_score",
    "pipelines.audit.label_flag",
    "pipelines.transforms.io",
)


def stage_classes() -> list[type[RecordStage]]:
    """Every RecordStage subclass of :data:`STAGE_MODULES` (and their subclasses: the
    readers), in a stable order."""
    for module in STAGE_MODULES:
        importlib.import_module(module)
    found: list[type[RecordStage]] = []
    todo = list(RecordStage.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def rows(classes: list[type[RecordStage]] | None = None) -> list[tuple[str, str, str]]:
    """``(stage, reason, meaning)`` for every reason, stages in pipeline order.

    Raises:
        ValueError: a stage is not in ``STAGES``, or a reason has no meaning.
    """
    classes = stage_classes() if classes is None else classes
    by_stage: dict[str, list[type[RecordStage]]] = {}
    for cls in classes:
        if cls.stage not in STAGES:
            raise ValueError(f"{cls.__qualname__}.stage {cls.stage!r} is not in STAGES")
        by_stage.setdefault(cls.stage, []).append(cls)
    out: list[tuple[str, str, str]] = []
    for stage in STAGES:
        reasons: dict[str, StageReason] = {}
        notes: list[str] = []
        for cls in by_stage.get(stage, []):
            for reason in cls.reasons():
                if not reason.doc:
                    raise ValueError(f"{cls.__qualname__}.Reason.{reason.name} has no meaning")
                reasons.setdefault(reason.value, reason)
            if cls.more_reasons and cls.more_reasons not in notes:
                notes.append(cls.more_reasons)
        out += [(stage, f"`{value}`", format_text(r.doc)) for value, r in reasons.items()]
        out += [(stage, "…", format_text(note)) for note in notes]
    out.append(("every stage", f"`{UNEXPECTED_ERROR}`", format_text(UNEXPECTED_ERROR_DOC)))
    return out


def table(classes: list[type[RecordStage]] | None = None) -> str:
    """The Markdown table (ending with a newline)."""
    lines = ["| stage | reason | meaning |", "|---|---|---|"]
    lines += [
        f"| {stage if stage == 'every stage' else f'`{stage}`'} | {reason} | {meaning} |"
        for stage, reason, meaning in rows(classes)
    ]
    return "\n".join(lines) + "\n"


def block() -> str:
    """What README.md holds between (and including) the markers."""
    return f"{START}\n{NOTE}\n\n{table()}{END}"


def main(argv: list[str] | None = None) -> int:
    return table_main(
        argv, "python -m tools.reason_table", __doc__, "reason table", table, block, START, END
    )


if __name__ == "__main__":
    sys.exit(main())
