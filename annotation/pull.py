"""Read submitted responses back from Argilla: decisions, corrections, agreement, progress.

    mmloom annotate pull --dataset NAME --output DIR
    mmloom annotate status --dataset NAME

``pull`` writes what ``mmloom publish --annotations DIR`` consumes (see
``pipelines/publish/__init__.py``):

* ``DIR/decisions.jsonl``: one line per record with at least ``min_responses`` submitted
  responses (default: the rubric's overlap), sorted by id::

      {"id", "verdict": "accept"|"fix"|"reject", "corrections": {"field"?, "subfield"?},
       "mean_score": float|null, "n_responses": int,
       "comments": [{"annotator", "text"}], "needs_edit": [reason, ...]}

  The verdict follows the rubric's rule: ``majority`` (ties go to the most severe tied
  verdict: accept/fix -> fix, accept/reject and fix/reject -> reject) or ``strictest``.
  ``mean_score`` is the mean of the score question (MMIE's 0-6 reference-answer rating). A
  correction is the majority answer of a taxonomy question when it differs from the record's
  value. ``comments`` are the submitted answers of the rubric's text questions. Rejected
  records carry no corrections.
* ``DIR/needs_edit.jsonl``: the records that cannot be published as decided, one line each
  (``id``, ``category``, ``dataset``, ``verdict``, ``why``, ``comments``, ``answers``: what
  each annotator chose for the taxonomy questions). ``why`` lists one or more of:

  - ``fix_without_correction``: the verdict is fix but no field/subfield correction applies
    (the edit is in the comments, or nowhere);
  - ``impossible_pair``: the majority's (field, subfield) is not in the taxonomy (Argilla
    cannot tie the subfield list to the chosen field); the correction is not applied;
  - ``taxonomy_tie``: annotators disagree on the field or subfield with no majority;
  - ``verdict_tie``: the verdict came from a tie (reported with one of the above).

  Their decision lines carry the same ``needs_edit`` list: ``mmloom publish`` leaves them out
  (reason ``needs_edit``) unless ``--include-needs-edit``; ``mmloom annotate push
  --needs-edit DIR --dataset NEW`` sends exactly them to a second round with the comments
  shown; ``pull --previous DIR`` of that round merges its decisions over the first's.
* ``DIR/agreement.json``: per question (overall and per category) Krippendorff's alpha
  (ordinal for ratings, nominal for labels) and percent agreement with 95% bootstrap
  intervals, counts of records and verdicts, annotators, the rubric's protocol.

Only ``submitted`` responses count; drafts and discarded responses are reported by ``status``.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argilla as rg

from annotation.agreement import DEFAULT_BOOTSTRAP, agreement
from annotation.client import dataset_names, find_dataset, iter_raw_records, usernames
from annotation.rubric import CATEGORIES, Rubric
from annotation.settings import dataset_name
from schemas.taxonomy import is_known


class PullError(RuntimeError):
    """Nothing to pull, or the output cannot be written; the message says what to do."""


@dataclass
class Annotated:
    """One Argilla record with its submitted answers.

    Attributes:
        id: mmloom record id.
        category / field / subfield: as pushed (metadata).
        answers: user id -> question name -> value (submitted responses only).
        statuses: user id -> response status (submitted, discarded, draft).
    """

    id: str
    category: str
    field: str
    subfield: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)


def collect(
    client: rg.Argilla, dataset: str, workspace: str | None = None
) -> tuple[list[Annotated], dict[str, str]]:
    """Every record of the round ``dataset`` (all category datasets) with its responses.

    Returns:
        ``(records, datasets)``: records sorted by id; category -> dataset name found.

    Raises:
        PullError: no dataset of the round exists.
    """
    out, found = [], {}
    for category in CATEGORIES:
        name = dataset_name(dataset, category)
        ds = find_dataset(client, name, workspace)
        if ds is None:
            continue
        found[category] = name
        for item in iter_raw_records(client, ds.id, include=("responses",)):
            meta = item.get("metadata") or {}
            rec = Annotated(
                id=item["external_id"],
                category=meta.get("category", category),
                field=meta.get("field", ""),
                subfield=meta.get("subfield", ""),
            )
            for response in item.get("responses") or []:
                user = str(response["user_id"])
                rec.statuses[user] = response["status"]
                if response["status"] == "submitted":
                    values = response.get("values") or {}
                    rec.answers[user] = {q: v.get("value") for q, v in values.items()}
            out.append(rec)
    if not found:
        suffixes = tuple(dataset_name("", c) for c in CATEGORIES)
        names = dataset_names(client, workspace)
        rounds = sorted({n[: -len(s)] for n in names for s in suffixes if n.endswith(s)})
        raise PullError(
            f"no Argilla dataset named {dataset_name(dataset, '<category>')} (e.g. "
            f"{dataset_name(dataset, 'SA')}) in workspace {workspace or '(default)'}; rounds "
            f"there: {', '.join(rounds) or 'none'}; check --dataset and --workspace, or run "
            "`mmloom annotate push` first"
        )
    return sorted(out, key=lambda r: r.id), found


def decide_verdict(verdicts: list[str], rule: str, severity: tuple[str, ...]) -> str:
    """The record's verdict from its annotators' verdicts (see the module docstring)."""
    rank = {v: i for i, v in enumerate(severity)}
    if rule == "strictest":
        return max(verdicts, key=rank.__getitem__)
    counts = Counter(verdicts)
    top = max(counts.values())
    return max((v for v, c in counts.items() if c == top), key=rank.__getitem__)


def _majority(values: list[Any]) -> Any | None:
    """The single most frequent value, or None on a tie or no values."""
    counts = Counter(values).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _is_tie(values: list[Any]) -> bool:
    counts = Counter(values).most_common()
    return len(counts) > 1 and counts[0][1] == counts[1][1]


def comments(
    rec: Annotated, rubric: Rubric, names: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The non-empty answers of ``rec`` to the rubric's text questions, by annotator name."""
    names = names or {}
    text_questions = [
        q.name
        for q in rubric.questions.values()
        if q.kind == "text" and q.name in rubric.categories.get(rec.category, ())
    ]
    out = []
    for user in sorted(rec.answers, key=lambda u: names.get(u, u)):
        for q in text_questions:
            text = rec.answers[user].get(q)
            if isinstance(text, str) and text.strip():
                out.append({"annotator": names.get(user, user), "text": text.strip()})
    return out


def decide(
    rec: Annotated,
    rubric: Rubric,
    rule: str | None = None,
    names: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The decision line for one record, and a problem note (or None).

    Args:
        rec: the record with at least one submitted answer.
        rubric: the rubric (verdict, score and taxonomy questions; rule and severity).
        rule: overrides the rubric's rule.
        names: user id -> username, for the comments.
    """
    answers = list(rec.answers.values())
    verdicts = [a[rubric.verdict_question] for a in answers if a.get(rubric.verdict_question)]
    verdict = decide_verdict(verdicts, rule or rubric.rule, rubric.severity) if verdicts else "fix"
    why: list[str] = []
    scores = []
    if rubric.score_question:
        scores = [
            a[rubric.score_question] for a in answers if a.get(rubric.score_question) is not None
        ]
    corrections: dict[str, str] = {}
    problem = None
    if verdict != "reject":
        current = {"field": rec.field, "subfield": rec.subfield}
        for q in rubric.questions.values():
            if q.taxonomy and q.name in rubric.categories.get(rec.category, ()):
                given = [a[q.name] for a in answers if a.get(q.name)]
                chosen = _majority(given)
                if chosen is None and _is_tie(given) and "taxonomy_tie" not in why:
                    why.append("taxonomy_tie")
                if chosen is not None and chosen != current[q.taxonomy]:
                    corrections[q.taxonomy] = chosen
        if corrections:
            fixed = {**current, **corrections}
            if not is_known(fixed["field"], fixed["subfield"]):
                problem = (
                    f"{rec.id}: corrections {corrections} give ({fixed['field']!r}, "
                    f"{fixed['subfield']!r}), not in schemas/taxonomy.yaml; not applied, "
                    "sent back (needs_edit.jsonl)"
                )
                why.append("impossible_pair")
                corrections = {}
        if verdict == "fix" and not corrections:
            why.insert(0, "fix_without_correction")
        if why and (rule or rubric.rule) == "majority" and _is_tie(verdicts):
            why.append("verdict_tie")
    decision = {
        "id": rec.id,
        "verdict": verdict,
        "corrections": dict(sorted(corrections.items())),
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        "n_responses": len(answers),
        "comments": comments(rec, rubric, names),
        "needs_edit": why,
    }
    return decision, problem


def needs_edit_line(
    rec: Annotated, decision: dict[str, Any], rubric: Rubric, dataset: str, names: dict[str, str]
) -> dict[str, Any]:
    """The ``needs_edit.jsonl`` line of a record whose decision has a ``needs_edit`` list."""
    taxonomy_questions = [
        q.name
        for q in rubric.questions.values()
        if q.taxonomy and q.name in rubric.categories.get(rec.category, ())
    ]
    return {
        "id": rec.id,
        "category": rec.category,
        "dataset": dataset,
        "verdict": decision["verdict"],
        "why": decision["needs_edit"],
        "comments": decision["comments"],
        "record": {"field": rec.field, "subfield": rec.subfield},
        "answers": {
            names.get(user, user): {q: rec.answers[user].get(q) for q in taxonomy_questions}
            for user in sorted(rec.answers, key=lambda u: names.get(u, u))
        },
    }


def _answer_value(value: Any) -> Any:
    return tuple(sorted(value)) if isinstance(value, list) else value


def agreement_report(
    records: list[Annotated], rubric: Rubric, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Agreement per question: overall (all categories asking it) and per category."""
    out = {}
    for name, q in rubric.questions.items():
        if q.level is None:
            continue
        by_cat: dict[str, list[list[Any]]] = defaultdict(list)
        for rec in records:
            if name not in rubric.categories.get(rec.category, ()):
                continue
            values = [
                _answer_value(a[name]) for a in rec.answers.values() if a.get(name) is not None
            ]
            by_cat[rec.category].append(values)
        if not any(values for units in by_cat.values() for values in units):
            continue  # nobody answered it (e.g. an optional question)
        domain = list(q.values) if q.kind == "rating" else None
        units = [u for cat in sorted(by_cat) for u in by_cat[cat]]
        entry = agreement(units, q.level, domain, n_boot=n_boot, seed=seed)
        entry["by_category"] = {
            cat: agreement(by_cat[cat], q.level, domain, n_boot=n_boot, seed=seed)
            for cat in sorted(by_cat)
        }
        out[name] = entry
    return out


def pull(
    client: rg.Argilla,
    dataset: str,
    rubric: Rubric,
    output: str | Path,
    *,
    workspace: str | None = None,
    min_responses: int | None = None,
    rule: str | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    previous: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``decisions.jsonl``, ``needs_edit.jsonl`` and ``agreement.json`` for the round
    ``dataset``.

    Args:
        client: Argilla client.
        dataset: round name (as given to push).
        rubric: the rubric the round was pushed with.
        output: folder to write (created; the two files are replaced atomically).
        workspace: Argilla workspace (None: the key's default).
        min_responses: submitted responses a record needs for a decision (default: overlap).
        rule: ``majority`` or ``strictest`` (default: the rubric's).
        n_boot: bootstrap resamples for the intervals.
        seed: bootstrap seed.
        previous: the output folder of an earlier pull (a first round): its decisions and
            needs_edit lines for records this round did not decide are carried over, so the
            written files cover both rounds (this round's decision wins).

    Returns:
        The agreement.json content.
    """
    min_responses = min_responses or rubric.overlap
    records, datasets = collect(client, dataset, workspace)
    names = usernames(client)
    decided, problems, lines, edits = [], [], [], []
    pending = 0
    for rec in records:
        if len(rec.answers) < min_responses:
            pending += 1
            continue
        decision, problem = decide(rec, rubric, rule, names)
        decided.append(rec)
        lines.append(json.dumps(decision, ensure_ascii=False, sort_keys=True))
        if decision["needs_edit"]:
            line = needs_edit_line(rec, decision, rubric, datasets[rec.category], names)
            edits.append(json.dumps(line, ensure_ascii=False, sort_keys=True))
        if problem:
            problems.append(problem)
    carried = 0
    if previous is not None:
        mine = {r.id for r in decided}
        old_lines = _read_jsonl(Path(previous) / "decisions.jsonl", required=True)
        old_edits = _read_jsonl(Path(previous) / "needs_edit.jsonl", required=False)
        kept = [d for d in old_lines if d["id"] not in mine]
        carried = len(kept)
        lines = sorted(
            lines + [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in kept],
            key=lambda line: json.loads(line)["id"],
        )
        edits = sorted(
            edits
            + [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in old_edits
               if d["id"] not in mine],
            key=lambda line: json.loads(line)["id"],
        )  # fmt: skip
    verdicts = Counter(json.loads(line)["verdict"] for line in lines)
    annotators = sorted({names.get(u, u) for rec in decided for u in rec.answers})
    report = {
        "protocol": rubric.protocol,
        "rubric": {
            "source": os.path.basename(rubric.source),
            "overlap": rubric.overlap,
            "rule": rule or rubric.rule,
            "min_responses": min_responses,
            "bootstrap": {"resamples": n_boot, "seed": seed, "interval": "percentile 95%"},
        },
        "datasets": datasets,
        "records": {
            "in_argilla": len(records),
            "decided": len(decided),
            "pending": pending,
            "by_category": dict(sorted(Counter(r.category for r in decided).items())),
        },
        "verdicts": {v: verdicts.get(v, 0) for v in rubric.severity},
        "corrected": sum(1 for line in lines if json.loads(line)["corrections"]),
        "needs_edit": dict(
            sorted(Counter(w for line in edits for w in json.loads(line)["why"]).items())
        ),
        "needs_edit_records": len(edits),
        "carried_over": carried,
        "annotators": len(annotators),
        "questions": agreement_report(decided, rubric, n_boot, seed),
        "problems": problems,
    }
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "decisions.jsonl", "".join(line + "\n" for line in lines))
    _write(out / "needs_edit.jsonl", "".join(line + "\n" for line in edits))
    _write(out / "agreement.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _read_jsonl(path: Path, required: bool) -> list[dict[str, Any]]:
    if not path.is_file():
        if required:
            raise PullError(f"{path} not found; --previous takes the --output folder of a pull")
        return []
    try:
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except json.JSONDecodeError as exc:
        raise PullError(f"{path} is not JSON lines ({exc})") from None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def status(
    client: rg.Argilla, dataset: str, workspace: str | None = None, overlap: int = 2
) -> dict[str, Any]:
    """Progress of the round: per category, per category x field, per annotator.

    A record is complete once it has ``overlap`` submitted responses.
    """
    records, datasets = collect(client, dataset, workspace)
    names = usernames(client)
    per_cat: dict[str, Counter] = defaultdict(Counter)
    per_field: dict[str, Counter] = defaultdict(Counter)
    per_user: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        done = len(rec.answers) >= overlap
        for table, key in ((per_cat, rec.category), (per_field, f"{rec.category}/{rec.field}")):
            table[key]["records"] += 1
            table[key]["complete"] += done
            table[key]["responses_submitted"] += len(rec.answers)
        for user, st in rec.statuses.items():
            per_user[names.get(user, user)][st] += 1
    total = sum(c["records"] for c in per_cat.values())
    complete = sum(c["complete"] for c in per_cat.values())
    return {
        "datasets": datasets,
        "overlap": overlap,
        "records": total,
        "complete": complete,
        "by_category": {k: dict(v) for k, v in sorted(per_cat.items())},
        "by_field": {k: dict(v) for k, v in sorted(per_field.items())},
        "by_annotator": {k: dict(sorted(v.items())) for k, v in sorted(per_user.items())},
    }


def format_status(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`status`."""
    lines = [
        f"{report['complete']}/{report['records']} records complete "
        f"({report['overlap']} submitted responses each)",
        "",
        f"{'category / field':40s} {'records':>8s} {'complete':>9s} {'responses':>10s}",
    ]
    for key, c in report["by_category"].items():
        lines.append(
            f"{key:40s} {c['records']:8d} {c['complete']:9d} {c['responses_submitted']:10d}"
        )
        for fkey, fc in report["by_field"].items():
            if fkey.startswith(key + "/"):
                lines.append(
                    f"  {fkey.split('/', 1)[1]:38s} {fc['records']:8d} {fc['complete']:9d} "
                    f"{fc['responses_submitted']:10d}"
                )
    lines += ["", f"{'annotator':30s} {'submitted':>10s} {'discarded':>10s} {'draft':>6s}"]
    for user, c in report["by_annotator"].items():
        lines.append(
            f"{user:30s} {c.get('submitted', 0):10d} {c.get('discarded', 0):10d} "
            f"{c.get('draft', 0):6d}"
        )
    return "\n".join(lines)
