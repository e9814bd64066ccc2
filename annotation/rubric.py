"""The annotation rubric as data: load, validate and query ``rubric.yaml``.

A rubric defines each question once (``questions``) and lists, per category, the questions an
annotator answers for items of that category (``categories``). ``annotation/rubric.yaml`` is
the default; its JSON Schema is ``schemas/rubric.schema.json``. :func:`load_rubric` also
checks what the schema cannot express: every listed question exists, the verdict question is
a label question over accept / fix / reject, the score question is a rating question.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from schemas import load_schema, with_defaults, yamlsafe
from schemas.taxonomy import taxonomy

VERDICTS = ("accept", "fix", "reject")
CATEGORIES = ("SA", "PBL", "MSR", "IF")
# Names the Argilla dataset already uses for its field and metadata (see annotation.settings).
RESERVED_NAMES = (
    "item", "category", "field", "subfield", "source", "question_format", "clip_min_score",
    "n_images", "push_sha", "audit_flags", "audit_codes",
)  # fmt: skip
AUDIT_LABEL = "flag_"  # the audit question's labels: flag_1, flag_2, ... (flag N of the item)
DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubric.yaml"


class RubricError(ValueError):
    """The rubric file is missing or invalid; the message says what to fix."""


@dataclass(frozen=True)
class Question:
    """One rubric question.

    Attributes:
        name: identifier (also the Argilla question name).
        kind: ``rating``, ``label``, ``multi_label`` or ``text``.
        title: what the annotator reads.
        description: the guideline shown under the title.
        required: whether a submitted response must answer it.
        values: rating values (rating only).
        labels: label values (label and multi-label; filled from the taxonomy when set).
        taxonomy: ``field`` or ``subfield`` when the labels come from the taxonomy.
        correction: ``answer`` or ``weights`` for an optional text question whose answer
            corrects the record when the verdict is fix (see :mod:`annotation.corrections`).
    """

    name: str
    kind: str
    title: str
    description: str = ""
    required: bool = True
    values: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    taxonomy: str | None = None
    correction: str | None = None

    @property
    def level(self) -> str | None:
        """Krippendorff level of measurement: ordinal, nominal, or None (no agreement)."""
        return {"rating": "ordinal", "label": "nominal", "multi_label": "nominal"}.get(self.kind)


@dataclass(frozen=True)
class Rubric:
    """A validated rubric.

    Attributes:
        questions: name -> :class:`Question`.
        categories: category -> ordered question names.
        overlap: submitted responses wanted per record.
        score_question: rating question averaged into ``mean_score`` (or None).
        verdict_question: the accept / fix / reject label question.
        rule: ``majority`` or ``strictest``.
        severity: verdicts from most lenient to most severe.
        protocol: free text describing the protocol (goes into agreement.json).
        veto: ``(question, labels)``: a submitted response answering ``question`` with one
            of ``labels`` keeps the item out whatever the verdict; None: no veto.
        audit_question: the optional ``flag_N`` multi-label question on which annotators
            confirm (tick) or clear (leave unticked) each validity-audit flag of an item; None:
            flags are shown but not asked about.
        source: where the rubric was read from.
    """

    questions: dict[str, Question]
    categories: dict[str, tuple[str, ...]]
    overlap: int = 2
    score_question: str | None = None
    verdict_question: str = "verdict"
    rule: str = "majority"
    severity: tuple[str, ...] = VERDICTS
    protocol: str = ""
    veto: tuple[str, tuple[str, ...]] | None = None
    audit_question: str | None = None
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def corrections(self, category: str) -> list[Question]:
        """The correction questions (``correction`` set) ``category`` asks, in order."""
        return [q for q in self.for_category(category) if q.correction]

    def for_category(self, category: str) -> list[Question]:
        """The questions of ``category``, in order."""
        if category not in self.categories:
            raise RubricError(
                f"the rubric {self.source} has no questions for category {category!r}; add a "
                f"`categories.{category}` list"
            )
        return [self.questions[name] for name in self.categories[category]]


@functools.cache
def rubric_schema() -> dict[str, Any]:
    """The rubric JSON Schema, ``schemas/rubric.schema.json``."""
    return load_schema("rubric")


def _taxonomy_labels(kind: str) -> tuple[str, ...]:
    tax = taxonomy()
    if kind == "field":
        return tuple(tax)
    return tuple(sorted({sub for subs in tax.values() for sub in subs}))


def parse_rubric(data: Any, source: str = "<rubric>") -> Rubric:
    """Validate rubric data (already parsed from YAML) and build a :class:`Rubric`.

    Raises:
        RubricError: the data breaks the schema or the cross-checks.
    """
    errors = sorted(
        jsonschema.Draft202012Validator(rubric_schema()).iter_errors(data),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]]
        raise RubricError(f"{source} is not a valid rubric:\n" + "\n".join(lines))
    schema = rubric_schema()
    raw, data = data, with_defaults(schema["properties"], data)
    questions = {}
    for name, given in data["questions"].items():
        spec = with_defaults(schema["$defs"]["question"]["properties"], given)
        labels = tuple(spec.get("labels", ()))
        if spec.get("taxonomy"):
            labels = _taxonomy_labels(spec["taxonomy"])
        questions[name] = Question(
            name=name,
            kind=spec["kind"],
            title=spec["title"],
            description=spec.get("description", "").strip(),
            required=spec["required"],
            values=tuple(spec.get("values", ())),
            labels=labels,
            taxonomy=spec.get("taxonomy"),
            correction=spec.get("correction"),
        )
    categories = {cat: tuple(names) for cat, names in data["categories"].items()}
    problems = [
        f"question name {name!r} is reserved for the dataset's field or metadata; rename it"
        for name in questions
        if name in RESERVED_NAMES
    ]
    for cat, names in categories.items():
        for name in names:
            if name not in questions:
                problems.append(
                    f"categories.{cat} lists {name!r}, which `questions` does not define"
                )
    verdict = data["verdict_question"]
    vq = questions.get(verdict)
    if vq is None or vq.kind != "label" or set(vq.labels) != set(VERDICTS):
        problems.append(
            f"verdict_question {verdict!r} must be a label question with labels {list(VERDICTS)}"
        )
    elif not vq.required:
        problems.append(f"verdict_question {verdict!r} must be required")
    for cat, names in categories.items():
        if verdict not in names:
            problems.append(f"categories.{cat} must include the verdict question {verdict!r}")
    score = data["score_question"]
    if score is not None and (score not in questions or questions[score].kind != "rating"):
        problems.append(f"score_question {score!r} must name a rating question")
    veto = data.get("veto")
    if veto is not None:
        vq = questions.get(veto["question"])
        if vq is None or vq.kind != "label" or not set(veto["labels"]) <= set(vq.labels):
            problems.append(
                f"veto.question {veto['question']!r} must name a label question whose labels "
                f"include {veto['labels']}"
            )
    audit = data["audit_question"]
    if audit is not None:
        aq = questions.get(audit)
        if (
            aq is None
            or aq.kind != "multi_label"
            or aq.required
            or not all(
                label.startswith(AUDIT_LABEL) and label[len(AUDIT_LABEL) :].isdigit()
                for label in aq.labels
            )
        ):
            problems.append(
                f"audit_question {audit!r} must name an optional (required: false) multi_label "
                "question with labels flag_1, flag_2, ..."
            )
    kinds = Counter(q.correction for q in questions.values() if q.correction)
    problems += [
        f"{n} questions are `correction: {kind}`; keep one (a record has one answer)"
        for kind, n in kinds.items()
        if n > 1
    ]
    if problems:
        raise RubricError(
            f"{source} is not a valid rubric:\n" + "\n".join(f"  {p}" for p in problems)
        )
    decision = with_defaults(schema["properties"]["decision"]["properties"], data.get("decision"))
    return Rubric(
        questions=questions,
        categories=categories,
        overlap=data["overlap"],
        score_question=score,
        verdict_question=verdict,
        rule=decision["rule"],
        severity=tuple(decision.get("severity", VERDICTS)),
        protocol=" ".join(data.get("protocol", "").split()),
        veto=None if veto is None else (veto["question"], tuple(veto["labels"])),
        audit_question=audit,
        source=source,
        raw=raw,
    )


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Read and validate a rubric YAML file (default: ``annotation/rubric.yaml``).

    Raises:
        RubricError: the file is missing, not YAML, or not a valid rubric.
    """
    path = Path(path) if path else DEFAULT_RUBRIC
    try:
        data = yamlsafe.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RubricError(f"cannot read the rubric {path}: {exc.strerror}; check --rubric") from exc
    except yaml.YAMLError as exc:
        raise RubricError(f"{path} is not valid YAML: {exc}") from exc
    return parse_rubric(data, str(path))
