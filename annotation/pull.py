"""Read responses back from Argilla: decisions, corrections, vetoes, agreement, progress.

    mmloom annotate pull --dataset NAME --output DIR
    mmloom annotate status --dataset NAME

``pull`` writes what ``mmloom publish --annotations DIR`` consumes (see
``pipelines/publish/__init__.py``):

* ``DIR/responses.jsonl``: every answer of every response, whatever its status (submitted,
  draft, discarded), one line per record x annotator x question of the record's category
  (:func:`response_lines`; a question left unanswered has value null)::

      {"record_id", "dataset", "annotator", "question", "value", "status", "updated_at",
       "round", "category"}

  ``annotator`` is a pseudonymous id, ``ann-`` + 12 hex digits of HMAC-SHA256 of the Argilla
  user id keyed with ``DIR/annotator_salt`` (made once, mode 0600, taken over from
  ``--previous``; it never goes into a release), so no username or key is written. With
  ``--previous`` the earlier round's lines are kept too. ``mmloom publish`` copies the file
  into the release as ``annotations/responses.jsonl``.
* ``DIR/decisions.jsonl``: one line per record with at least ``min_responses`` submitted
  responses (default: the rubric's overlap), sorted by id::

      {"id", "verdict": "accept"|"fix"|"reject",
       "corrections": {"field"?, "subfield"?, "answer"?: str, "weights"?: [int, ...]},
       "corrected_by"?: {correction: [annotator id, ...]},
       "veto"?: {"question", "labels", "by": [annotator id, ...]},
       "mean_score": float|null, "n_responses": int,
       "comments": [{"annotator", "text"}], "needs_edit": [reason, ...],
       "audit"?: {"flags": [{"flag": N, "code", "outcome": "confirmed"|"cleared"|"split",
                             "confirmed_by": [annotator id, ...],
                             "cleared_by": [annotator id, ...]}]}}

  The verdict follows the rubric's rule: ``majority`` (ties go to the most severe tied
  verdict: accept/fix -> fix, accept/reject and fix/reject -> reject) or ``strictest``.
  ``mean_score`` is the mean of the score question (MMIE's 0-6 reference-answer rating). A
  taxonomy correction is the majority answer of a taxonomy question when it differs from the
  record's value. With verdict fix, an ``answer`` or ``weights`` correction (the rubric's
  ``correction`` questions; weights read from ``6/2/2``, whole numbers 1-10 summing to 10) is
  resolved only when every annotator who chose fix gave the same value: never guessed.
  ``corrected_by`` names who gave each correction. ``veto`` is set when any submitted
  response answers the rubric's veto question (``harmful``) with a veto label, whatever the
  verdict: publish leaves the item out; only a later round (``pull --previous``, whose
  decision replaces this one) can lift it. ``comments`` are the submitted answers of the
  rubric's other text questions. Rejected records carry no corrections. ``audit`` is set
  for a record pushed with validity-audit flags (metadata ``audit_codes``, flag N's code
  N-th) when the rubric has an ``audit_question``: each submitted response confirms flag N by
  ticking ``flag_N`` and clears it by leaving it unticked; the flag is ``confirmed`` when more
  responses confirm than clear it, ``cleared`` when fewer, ``split`` on a tie. It is evidence
  for the card's counts, never a verdict: only the verdict and the veto remove an item.
* ``DIR/needs_edit.jsonl``: the records that cannot be published as decided, one line each
  (``id``, ``category``, ``dataset``, ``verdict``, ``why``, ``comments``, ``answers``: what
  each annotator chose for the taxonomy questions, ``corrections``: what each wrote in the
  correction questions). ``why`` lists one or more of:

  - ``fix_without_correction``: the verdict is fix but no correction applies (the edit is in
    the comments, or nowhere);
  - ``conflicting_corrections``: the annotators who chose fix gave different answer or
    weights corrections (or some gave none): adjudication, in a second round;
  - ``invalid_correction``: a correction cannot be read (weights not N/N/... summing to 10);
  - ``impossible_pair``: the majority's (field, subfield) is not in the taxonomy (Argilla
    cannot tie the subfield list to the chosen field); the correction is not applied;
  - ``taxonomy_tie``: annotators disagree on the field or subfield with no majority;
  - ``verdict_tie``: the verdict came from a tie (reported with one of the above).

  Their decision lines carry the same ``needs_edit`` list: ``mmloom publish`` leaves them out
  (reason ``needs_edit``) unless ``--include-needs-edit`` (never for conflicting or invalid
  corrections); ``mmloom annotate push --needs-edit DIR --dataset NEW`` sends exactly them
  to a second round with the comments shown; ``pull --previous DIR`` of that round merges
  its decisions over the first's.
* ``DIR/agreement.json``: per question (overall and per category) Krippendorff's alpha
  (ordinal for ratings, nominal for labels; an optional label left empty in a submitted
  response counts as "none"; alpha only over at least two items judged twice, else null)
  and percent agreement with 95% bootstrap intervals, counts of records, verdicts,
  corrections, vetoes and responses by status, annotators, the rubric's protocol.

Only ``submitted`` responses count for decisions and agreement; ``responses.jsonl`` keeps
drafts and discarded ones too, and ``status`` counts them per annotator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argilla as rg

from annotation.agreement import DEFAULT_BOOTSTRAP, agreement
from annotation.client import dataset_names, find_dataset, http, iter_raw_records, usernames
from annotation.corrections import CorrectionError
from annotation.corrections import normalise as normalise_correction
from annotation.rubric import AUDIT_LABEL, CATEGORIES, Question, Rubric
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
        responses: user id -> ``{"status", "values", "updated_at"}`` for every response,
            whatever its status (``values``: question name -> value, as saved).
        flags: the codes of the validity-audit flags pushed with the record, flag 1 first
            (metadata ``audit_codes``).
    """

    id: str
    category: str
    field: str
    subfield: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def _codes(value: Any) -> list[str]:
    """The ``audit_codes`` metadata as a list (Argilla keeps a one-item list or a string)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


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
                flags=_codes(meta.get("audit_codes")),
            )
            for response in item.get("responses") or []:
                user = str(response["user_id"])
                rec.statuses[user] = response["status"]
                values = {
                    q: (v or {}).get("value") for q, v in (response.get("values") or {}).items()
                }
                rec.responses[user] = {
                    "status": response["status"],
                    "values": values,
                    "updated_at": str(response.get("updated_at") or response.get("inserted_at")),
                }
                if response["status"] == "submitted":
                    rec.answers[user] = values
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
    """The non-empty answers of ``rec`` to the rubric's text questions (corrections left
    out: they are the decision's ``corrections``), by annotator name."""
    names = names or {}
    text_questions = [
        q.name
        for q in rubric.questions.values()
        if q.kind == "text"
        and not q.correction
        and q.name in rubric.categories.get(rec.category, ())
    ]
    out = []
    for user in sorted(rec.answers, key=lambda u: names.get(u, u)):
        for q in text_questions:
            text = rec.answers[user].get(q)
            if isinstance(text, str) and text.strip():
                out.append({"annotator": names.get(user, user), "text": text.strip()})
    return out


def pseudonym(user_id: str, salt: bytes) -> str:
    """A stable pseudonymous annotator id: ``ann-`` + the first 12 hex digits of
    HMAC-SHA256(salt, Argilla user id). Without the salt it cannot be traced to the user."""
    return "ann-" + hmac.new(salt, user_id.encode(), hashlib.sha256).hexdigest()[:12]


def _corrections_given(
    rec: Annotated, rubric: Rubric, users: list[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per correction kind, each user's normalised correction (None: left empty), and the
    problems of corrections that could not be read."""
    given: dict[str, dict[str, Any]] = {}
    invalid = []
    for q in rubric.corrections(rec.category):
        given[q.correction] = {}
        for user in users:
            try:
                given[q.correction][user] = normalise_correction(
                    q.correction, rec.answers[user].get(q.name)
                )
            except CorrectionError as exc:
                given[q.correction][user] = None
                invalid.append(f"{q.name}: {exc}")
    return given, invalid


def decide(
    rec: Annotated,
    rubric: Rubric,
    rule: str | None = None,
    names: dict[str, str] | None = None,
    ids: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The decision line for one record, and a problem note (or None).

    Corrections: a taxonomy correction is the majority answer where it differs from the
    record. With verdict fix, a correction question (answer text, weights) is resolved only
    when every annotator who chose fix gave the same value; different values (or some empty)
    are ``conflicting_corrections``, unreadable ones ``invalid_correction``: both hold the
    record back, never guessed. ``corrected_by`` names, per correction, the annotators
    (pseudonymous ids) who gave it. The veto (the rubric's ``veto``: any submitted
    ``harmful``) is ``veto: {question, labels, by}``, whatever the verdict.

    Args:
        rec: the record with at least one submitted answer.
        rubric: the rubric (verdict, score, taxonomy, correction and veto questions; rule).
        rule: overrides the rubric's rule.
        names: user id -> username, for the comments.
        ids: user id -> pseudonymous id (default: the user id).
    """
    ids = ids or {}
    answers = list(rec.answers.values())
    verdicts = [a[rubric.verdict_question] for a in answers if a.get(rubric.verdict_question)]
    verdict = decide_verdict(verdicts, rule or rubric.rule, rubric.severity) if verdicts else "fix"
    why: list[str] = []
    scores = []
    if rubric.score_question:
        scores = [
            a[rubric.score_question] for a in answers if a.get(rubric.score_question) is not None
        ]
    corrections: dict[str, Any] = {}
    corrected_by: dict[str, list[str]] = {}
    problems: list[str] = []
    asked = rubric.categories.get(rec.category, ())
    if verdict != "reject":
        current = {"field": rec.field, "subfield": rec.subfield}
        for q in rubric.questions.values():
            if q.taxonomy and q.name in asked:
                given = [a[q.name] for a in answers if a.get(q.name)]
                chosen = _majority(given)
                if chosen is None and _is_tie(given) and "taxonomy_tie" not in why:
                    why.append("taxonomy_tie")
                if chosen is not None and chosen != current[q.taxonomy]:
                    corrections[q.taxonomy] = chosen
                    corrected_by[q.taxonomy] = sorted(
                        ids.get(u, u) for u, a in rec.answers.items() if a.get(q.name) == chosen
                    )
        if corrections.keys() & {"field", "subfield"}:
            fixed = {**current, **corrections}
            if not is_known(fixed["field"], fixed["subfield"]):
                problems.append(
                    f"{rec.id}: corrections {corrections} give ({fixed['field']!r}, "
                    f"{fixed['subfield']!r}), not in schemas/taxonomy.yaml; not applied, "
                    "sent back (needs_edit.jsonl)"
                )
                why.append("impossible_pair")
                corrections, corrected_by = {}, {}
        if verdict == "fix":
            vq = rubric.verdict_question
            fixers = sorted(u for u, a in rec.answers.items() if a.get(vq) == "fix")
            given, invalid = _corrections_given(rec, rubric, fixers)
            if invalid:
                why.append("invalid_correction")
                problems.append(f"{rec.id}: {'; '.join(invalid)}; sent back (needs_edit.jsonl)")
            for kind, by_user in given.items():
                values = list(by_user.values())
                if all(v is None for v in values):
                    continue
                if all(v == values[0] for v in values):
                    corrections[kind] = values[0]
                    corrected_by[kind] = sorted(ids.get(u, u) for u in by_user)
                elif "conflicting_corrections" not in why:
                    why.append("conflicting_corrections")
                    problems.append(
                        f"{rec.id}: the annotators who chose fix gave different {kind} "
                        "corrections; sent back (needs_edit.jsonl)"
                    )
            if not corrections and not {"conflicting_corrections", "invalid_correction"} & set(why):
                why.insert(0, "fix_without_correction")
        if why and (rule or rubric.rule) == "majority" and _is_tie(verdicts):
            why.append("verdict_tie")
    decision: dict[str, Any] = {
        "id": rec.id,
        "verdict": verdict,
        "corrections": dict(sorted(corrections.items())),
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        "n_responses": len(answers),
        "comments": comments(rec, rubric, names),
        "needs_edit": why,
    }
    if corrected_by:
        decision["corrected_by"] = dict(sorted(corrected_by.items()))
    if rubric.veto is not None and rubric.veto[0] in asked:
        question, labels = rubric.veto
        by = sorted(ids.get(u, u) for u, a in rec.answers.items() if a.get(question) in labels)
        if by:
            decision["veto"] = {"question": question, "labels": list(labels), "by": by}
    review = audit_review(rec, rubric, ids)
    if review:
        decision["audit"] = {"flags": review}
    return decision, "; ".join(problems) or None


def audit_review(
    rec: Annotated, rubric: Rubric, ids: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Per validity-audit flag of ``rec`` (flag 1 first), who confirmed it (ticked
    ``flag_N`` in the rubric's audit question) and who cleared it (submitted without ticking
    it), and the outcome: ``confirmed`` when more confirm than clear, ``cleared`` when fewer,
    ``split`` on a tie. Empty when the record has no flags or the rubric or the record's
    category does not ask the audit question."""
    question = rubric.audit_question
    if not rec.flags or question is None or question not in rubric.categories.get(rec.category, ()):
        return []
    ids = ids or {}
    out = []
    for n, code in enumerate(rec.flags, 1):
        label = f"{AUDIT_LABEL}{n}"
        confirmed, cleared = [], []
        for user, answer in rec.answers.items():
            ticked = answer.get(question) or []
            (confirmed if label in ticked else cleared).append(ids.get(user, user))
        outcome = (
            "confirmed" if len(confirmed) > len(cleared)
            else "cleared" if len(cleared) > len(confirmed)
            else "split"
        )  # fmt: skip
        out.append(
            {
                "flag": n,
                "code": code,
                "outcome": outcome,
                "confirmed_by": sorted(confirmed),
                "cleared_by": sorted(cleared),
            }
        )
    return out


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
        "corrections": {
            names.get(user, user): {
                q.name: rec.answers[user].get(q.name) for q in rubric.corrections(rec.category)
            }
            for user in sorted(rec.answers, key=lambda u: names.get(u, u))
            if any(rec.answers[user].get(q.name) for q in rubric.corrections(rec.category))
        },
    }


NO_LABEL = "(none)"  # an optional label question left empty in a submitted response


def _answer_value(value: Any) -> Any:
    return tuple(sorted(value)) if isinstance(value, list) else value


def unit_values(rec: Annotated, q: Question) -> list[Any]:
    """The values the annotators who submitted gave to ``q`` for ``rec``, as agreement
    counts them: an optional label or multi-label question left empty counts as "none"
    (``(none)``, or the empty set of labels), so one annotator's ticks against another's
    nothing count as a disagreement instead of vanishing."""
    optional_choice = not q.required and q.kind in ("label", "multi_label")
    out = []
    for a in rec.answers.values():
        value = a.get(q.name)
        if value is None or value == []:
            if not optional_choice:
                continue
            value = [] if q.kind == "multi_label" else NO_LABEL
        out.append(_answer_value(value))
    return out


def agreement_report(
    records: list[Annotated], rubric: Rubric, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Agreement per question: overall (all categories asking it) and per category."""
    out = {}
    for name, q in rubric.questions.items():
        if q.level is None:
            continue
        by_cat: dict[str, list[list[Any]]] = defaultdict(list)
        answered = False
        for rec in records:
            if name not in rubric.categories.get(rec.category, ()):
                continue
            if name == rubric.audit_question and not rec.flags:
                continue  # asked of flagged items only: an empty answer elsewhere says nothing
            by_cat[rec.category].append(unit_values(rec, q))
            answered = answered or any(a.get(name) not in (None, []) for a in rec.answers.values())
        if not answered:
            continue  # nobody answered it (e.g. an optional question nobody ticked)
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
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    salt = annotator_salt(out, previous)
    ids = {u: pseudonym(u, salt) for rec in records for u in rec.responses}
    decided, problems, lines, edits = [], [], [], []
    pending = 0
    for rec in records:
        if len(rec.answers) < min_responses:
            pending += 1
            continue
        decision, problem = decide(rec, rubric, rule, names, ids)
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
    responses = response_lines(records, rubric, dataset, datasets, ids)
    if previous is not None:
        mine_keys = {_response_key(r) for r in responses}
        old = _read_jsonl(Path(previous) / RESPONSES, required=False)
        responses += [r for r in old if _response_key(r) not in mine_keys]
        responses.sort(key=_response_key)
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
        "corrections": dict(
            sorted(Counter(k for line in lines for k in json.loads(line)["corrections"]).items())
        ),
        "vetoed": sum(1 for line in lines if json.loads(line).get("veto")),
        "responses": dict(sorted(Counter(r["status"] for r in responses).items())),
        "needs_edit": dict(
            sorted(Counter(w for line in edits for w in json.loads(line)["why"]).items())
        ),
        "needs_edit_records": len(edits),
        "carried_over": carried,
        "annotators": len(annotators),
        "audit": audit_counts(lines),
        "questions": agreement_report(decided, rubric, n_boot, seed),
        "problems": problems,
    }
    _write(out / "decisions.jsonl", "".join(line + "\n" for line in lines))
    _write(
        out / RESPONSES,
        "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in responses),
    )
    _write(out / "needs_edit.jsonl", "".join(line + "\n" for line in edits))
    _write(out / "agreement.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def audit_counts(lines: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Per category and flag code, over the decision lines: ``reviewed`` (flags on decided
    records), ``confirmed``, ``cleared`` and ``split``."""
    out: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for line in lines:
        decision = json.loads(line)
        category = decision["id"].split("_", 1)[0]
        for flag in (decision.get("audit") or {}).get("flags") or []:
            counts = out[category][flag["code"]]
            counts["reviewed"] += 1
            counts[flag["outcome"]] += 1
    keys = ("reviewed", "confirmed", "cleared", "split")
    return {
        cat: {code: {k: c[k] for k in keys} for code, c in sorted(codes.items())}
        for cat, codes in sorted(out.items())
    }


RESPONSES = "responses.jsonl"
SALT = "annotator_salt"  # per release: keep it private, next to the pull's files


def annotator_salt(out: Path, previous: str | Path | None = None) -> bytes:
    """The salt of the pseudonymous annotator ids: ``out/annotator_salt`` (mode 0600), taken
    from ``previous`` when ``out`` has none (so a second round names annotators the same),
    else made new. It never goes into a release."""
    path = out / SALT
    for source in (path, Path(previous) / SALT if previous is not None else None):
        if source is not None and source.is_file():
            salt = source.read_text(encoding="ascii", errors="replace").strip()
            break
    else:
        source, salt = path, secrets.token_hex(32)
    try:
        key = bytes.fromhex(salt)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise PullError(
            f"{source} is not an annotator salt (hex digits, at least 32); restore it from a "
            "backup of that pull folder, or remove it to start new annotator ids"
        )
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(salt + "\n")
    return key


def _response_key(line: dict[str, Any]) -> tuple:
    return (line["record_id"], line["dataset"], line["annotator"], line["question"])


def response_lines(
    records: list[Annotated],
    rubric: Rubric,
    round_name: str,
    datasets: dict[str, str],
    ids: dict[str, str],
) -> list[dict[str, Any]]:
    """``responses.jsonl``: one line per record x annotator x question of the record's
    category, for every response whatever its status (a question left unanswered has value
    null)::

        {"record_id", "dataset", "annotator", "question", "value", "status", "updated_at",
         "round", "category"}

    ``annotator`` is the pseudonymous id (:func:`pseudonym`), never a username or key.
    """
    out = []
    for rec in records:
        questions = rubric.categories.get(rec.category, ())
        for user, response in rec.responses.items():
            for q in questions:
                out.append(
                    {
                        "record_id": rec.id,
                        "dataset": datasets[rec.category],
                        "annotator": ids[user],
                        "question": q,
                        "value": response["values"].get(q),
                        "status": response["status"],
                        "updated_at": response["updated_at"],
                        "round": round_name,
                        "category": rec.category,
                    }
                )
    return sorted(out, key=_response_key)


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

    A record is complete once it has ``overlap`` submitted responses. ``by_annotator`` lists
    every annotator of the round's workspace (those with no response yet too, with no
    counts) and anyone else who responded.
    """
    records, datasets = collect(client, dataset, workspace)
    names = usernames(client)
    per_cat: dict[str, Counter] = defaultdict(Counter)
    per_field: dict[str, Counter] = defaultdict(Counter)
    per_user: dict[str, Counter] = defaultdict(Counter)
    for name in workspace_annotators(client, next(iter(datasets.values())), workspace):
        per_user[name] = Counter()  # listed with no counts
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


def workspace_annotators(client: rg.Argilla, dataset: str, workspace: str | None) -> list[str]:
    """Usernames of the annotators (role ``annotator``) of the workspace holding ``dataset``;
    empty when the key may not list them."""
    ds = find_dataset(client, dataset, workspace)
    if ds is None:
        return []
    response = http(client).get(f"/api/v1/datasets/{ds.id}")
    if response.status_code != 200:
        return []
    response = http(client).get(f"/api/v1/workspaces/{response.json()['workspace_id']}/users")
    if response.status_code != 200:
        return []
    return sorted(
        u["username"] for u in response.json().get("items", []) if u.get("role") == "annotator"
    )


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
