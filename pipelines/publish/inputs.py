"""What a publish reads: the build's records and stats, annotation decisions, selection targets.

Records are streamed from the build once and only their JSON views (metadata, a few KB each)
stay in memory. Images stay in the build's content-addressed store
(``<build>/images/<sha256>.<ext>``); the shard writer reads them one row group at a time, so a
release of tens of thousands of items never holds its pictures in RAM.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from annotation.corrections import CorrectionError
from annotation.corrections import apply as apply_correction
from schemas import selection
from schemas.buildio import read_records, read_stats, require_complete
from schemas.errors import MmloomError
from schemas.store import ImageStore
from schemas.validation import validate_record

log = logging.getLogger("mmloom.publish")

VERDICTS = ("accept", "fix", "reject")
CORRECTABLE = ("field", "subfield", "answer", "weights")
# needs_edit reasons that no flag publishes: an edit annotators asked for but did not settle
UNRESOLVED = ("conflicting_corrections", "invalid_correction")
# what the annotators made of a validity-audit flag (annotation/pull.py: audit_review)
AUDIT_OUTCOMES = ("confirmed", "cleared", "split")
AUDIT_COUNTS = ("flagged", "reviewed", "confirmed", "cleared", "split", "removed")


@dataclass
class Dropped:
    """One thing that did not make it into the release (a line of ``dropped.jsonl``)."""

    stage: str
    reason: str
    id: str | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"detail": self.detail, "id": self.id, "reason": self.reason, "stage": self.stage}


@dataclass
class Build:
    """A build read for publishing: JSON views of its records, its stats, its image store."""

    records: list[dict[str, Any]]
    stats: dict[str, Any]
    store: ImageStore
    image_bytes: dict[str, int] = field(default_factory=dict)  # path -> size


def read_build(build_dir: str) -> Build:
    """Read every record of ``build_dir`` (no image bytes) and check its images are stored.

    The build is checked against its manifest first, the quick way (file list, sizes, footer
    row counts: ``schemas.buildio.require_complete``); ``mmloom verify`` also hashes.

    Raises:
        MmloomError: the folder is not a complete build (no valid ``_BUILD.json``, or files
        that differ from it), or an image a record uses is missing from the store.
    """
    require_complete(build_dir)
    stats = read_stats(build_dir)
    store = ImageStore(build_dir)
    records: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for record in read_records(build_dir):
        for image in record["images"]:
            if image["path"] in sizes:
                continue
            try:
                sizes[image["path"]] = store.size(image["path"])
            except (OSError, ValueError, IndexError) as exc:
                raise MmloomError(
                    f"image {image['path']} of {record['id']} is missing from the build's "
                    f"image store ({store.root}); the build in {build_dir} is incomplete or "
                    f"damaged: run `mmloom verify {build_dir}` for every problem, and rebuild "
                    "it with `mmloom build --overwrite`"
                ) from exc
        records.append(record)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise MmloomError(f"{build_dir} holds duplicate record ids; rebuild it")
    records.sort(key=lambda r: r["id"])
    return Build(records=records, stats=stats, store=store, image_bytes=sizes)


@dataclass
class Annotations:
    """Decisions by record id, agreement figures, and the lines that were rejected."""

    decisions: dict[str, dict[str, Any]]
    agreement: dict[str, Any] | None
    rejected_lines: list[Dropped]
    source: str
    tally: dict[str, Any] = field(default_factory=dict)  # filled by apply_decisions
    responses: str | None = None  # the pull's responses.jsonl, copied into the release
    n_responses: int = 0  # its lines


def _check_decision(obj: Any) -> str | None:
    """Why ``obj`` breaks the decisions.jsonl contract, or None when it keeps it."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return "missing or empty 'id'"
    if obj.get("verdict") not in VERDICTS:
        return f"'verdict' must be one of {list(VERDICTS)}, got {obj.get('verdict')!r}"
    corrections = obj.get("corrections") or {}
    if not isinstance(corrections, dict):
        return "'corrections' must be an object"
    for key, value in corrections.items():
        if key not in CORRECTABLE:
            return f"correction of {key!r} is not supported (only {list(CORRECTABLE)})"
        if key == "weights":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(w, int) and not isinstance(w, bool) for w in value)
            ):
                return "correction 'weights' must be a non-empty list of integers"
        elif not isinstance(value, str) or not value:
            return f"correction {key!r} must be a non-empty string"
    by = obj.get("corrected_by") or {}
    if not isinstance(by, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in by.values()
    ):
        return "'corrected_by' must map a correction to a list of annotator ids"
    veto = obj.get("veto")
    if veto is not None and not (isinstance(veto, dict) and isinstance(veto.get("by"), list)):
        return "'veto' must be null or an object with a 'by' list"
    audit = obj.get("audit")
    if audit is not None and not (
        isinstance(audit, dict)
        and isinstance(audit.get("flags"), list)
        and all(
            isinstance(f, dict)
            and isinstance(f.get("code"), str)
            and f.get("outcome") in AUDIT_OUTCOMES
            for f in audit["flags"]
        )
    ):
        return (
            '\'audit\' must be null or {"flags": [{"code": str, "outcome": '
            f"{'|'.join(AUDIT_OUTCOMES)}}}, ...]}}"
        )
    score = obj.get("mean_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        return "'mean_score' must be a number or null"
    n = obj.get("n_responses", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return "'n_responses' must be a non-negative integer"
    return None


def read_annotations(annotations_dir: str) -> Annotations:
    """Read ``decisions.jsonl`` (required) and ``agreement.json`` (optional), and find
    ``responses.jsonl`` (optional: every answer of the round, which the release carries).

    Raises:
        MmloomError: ``decisions.jsonl`` is missing or ``agreement.json`` is not JSON.
    """
    path = os.path.join(annotations_dir, "decisions.jsonl")
    if not os.path.isfile(path):
        raise MmloomError(
            f"{path} not found; --annotations must point at the folder written by "
            "`mmloom annotate pull --output DIR`"
        )
    decisions: dict[str, dict[str, Any]] = {}
    rejected: list[Dropped] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                rejected.append(
                    Dropped("read_annotations", "malformed_decision", None, f"line {lineno}: {exc}")
                )
                continue
            problem = _check_decision(obj)
            rid = obj.get("id") if isinstance(obj, dict) else None
            if problem:
                rejected.append(
                    Dropped(
                        "read_annotations",
                        "malformed_decision",
                        rid if isinstance(rid, str) else None,
                        f"line {lineno}: {problem}",
                    )
                )
            elif rid in decisions:
                rejected.append(
                    Dropped(
                        "read_annotations",
                        "duplicate_decision",
                        rid,
                        f"line {lineno}: a decision for this id came earlier; the first is used",
                    )
                )
            else:
                decisions[rid] = obj
    agreement = None
    agreement_path = os.path.join(annotations_dir, "agreement.json")
    if os.path.isfile(agreement_path):
        with open(agreement_path, encoding="utf-8") as f:
            try:
                agreement = json.load(f)
            except json.JSONDecodeError as exc:
                raise MmloomError(
                    f"{agreement_path} is not valid JSON ({exc}); fix or remove it"
                ) from exc
    responses = os.path.join(annotations_dir, "responses.jsonl")
    n_responses = 0
    if os.path.isfile(responses):
        with open(responses, encoding="utf-8") as f:
            n_responses = sum(1 for line in f if line.strip())
    else:
        responses = None
    return Annotations(
        decisions,
        agreement,
        rejected,
        annotations_dir,
        responses=responses,
        n_responses=n_responses,
    )


def needs_edit(decision: dict[str, Any]) -> list[str]:
    """Why a decision cannot be published as decided: its ``needs_edit`` list (written by
    ``mmloom annotate pull``), plus ``fix_without_correction`` for a ``fix`` with no
    correction (so decision files written before the list existed are read the same way)."""
    why = [str(w) for w in decision.get("needs_edit") or []]
    if (
        decision.get("verdict") == "fix"
        and not decision.get("corrections")
        and "fix_without_correction" not in why
    ):
        why.insert(0, "fix_without_correction")
    return why


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def apply_corrections(
    record: dict[str, Any], decision: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``record`` with the decision's corrections applied, and one provenance entry per
    correction that changed it: ``{target, before, after, by}`` (``before``/``after`` as JSON
    text, ``by`` the pseudonymous ids of the annotators who gave it).

    Raises:
        CorrectionError: an answer or weights correction does not fit the record.
    """
    corrections = decision.get("corrections") or {}
    by = decision.get("corrected_by") or {}
    fixed = copy.deepcopy(record)
    edits = []
    for key in CORRECTABLE:
        if key not in corrections:
            continue
        value = corrections[key]
        if key in ("field", "subfield"):
            if value == record[key]:
                continue
            before: Any = record[key]
            fixed[key] = value
            after: Any = value
        else:
            fixed, before = apply_correction(fixed, key, value)
            after = {k: _after(fixed, k) for k in before}
            if before == after:
                continue
        edits.append(
            {
                "target": key,
                "before": _json_text(before),
                "after": _json_text(after),
                "by": sorted(str(x) for x in by.get(key, [])),
            }
        )
    return fixed, edits


def _after(record: dict[str, Any], key: str) -> Any:
    if key == "answer":
        return [s["text"] for s in record["answer"] if s["text"] is not None]
    if key == "gt_answer":
        return record["gt_answer"][0]["text"]
    if key == "weights":
        return [c["weight"] for c in record["instruction"]["components"]]
    return record[key]


def apply_decisions(
    records: list[dict[str, Any]],
    annotations: Annotations | None,
    require: bool,
    include_needs_edit: bool = False,
) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """Drop vetoed and rejected records, hold back those that need an edit, apply
    corrections and re-validate.

    A decision with a ``veto`` (an annotator marked the item harmful) is dropped with reason
    ``harmful_veto`` whatever its verdict and whatever the flags. A decision that needs an
    edit (:func:`needs_edit`: a fix without an applicable correction, an impossible
    field/subfield pair, an unresolved tie) is dropped with reason ``needs_edit`` unless
    ``include_needs_edit``; one whose corrections conflict or cannot be read
    (``UNRESOLVED``) is always dropped, and with ``require`` (``--require-annotation``) any
    is, so only accepted records and records with an applied fix are published. A
    correction that does not fit the record is dropped as ``correction_invalid``.

    Each published record gains ``annotation``: ``{verdict, mean_score, n_responses,
    corrected, edits}`` (``edits``: see :func:`apply_corrections`) or None when it has no
    decision. ``annotations.tally`` gets the counts the card and report show. When no
    decision matches a record of the build, a warning goes to stderr and into the tally.
    Returns the kept records (input order) and what was dropped.
    """
    dropped: list[Dropped] = []
    if annotations is None:
        if require:
            raise MmloomError("--require-annotation needs --annotations DIR")
        return [{**r, "annotation": None} for r in records], dropped
    kept: list[dict[str, Any]] = []
    known = {r["id"] for r in records}
    unknown = sorted(set(annotations.decisions) - known)
    for rid in unknown:
        dropped.append(
            Dropped("read_annotations", "unknown_id", rid, "the build holds no record with this id")
        )
    tally: dict[str, Any] = {
        "decisions": len(annotations.decisions),
        "unknown_id": len(unknown),
        "matched": 0,
        "by_category": defaultdict(lambda: defaultdict(int)),
        "verdicts": defaultdict(int),
        "vetoed": 0,
        "needs_edit": 0,
        "correction_invalid": 0,
        "edits": defaultdict(int),
        "warning": None,
        "responses": annotations.n_responses if annotations.responses else None,
    }
    audit: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(AUDIT_COUNTS, 0))
    )
    for record in records:
        category = record.get("category") or record["id"].split("_", 1)[0]
        cat = tally["by_category"][category]
        cat["build"] += 1
        decision = annotations.decisions.get(record["id"])
        _count_audit(audit[category], record, decision)
        if decision is None:
            if require:
                dropped.append(
                    Dropped("apply_annotations", "not_annotated", record["id"], "no decision")
                )
            else:
                kept.append({**record, "annotation": None})
            continue
        tally["matched"] += 1
        cat["decided"] += 1
        tally["verdicts"][decision["verdict"]] += 1
        veto = decision.get("veto")
        if veto:
            tally["vetoed"] += 1
            cat["vetoed"] += 1
            dropped.append(
                Dropped(
                    "apply_annotations",
                    "harmful_veto",
                    record["id"],
                    f"verdict={decision['verdict']}; {len(veto.get('by') or [])} annotator(s) "
                    f"answered {veto.get('question', 'harmful')}: "
                    f"{'/'.join(map(str, veto.get('labels') or ['harmful']))}",
                )
            )
            continue
        if decision["verdict"] == "reject":
            dropped.append(
                Dropped(
                    "apply_annotations",
                    "annotation_rejected",
                    record["id"],
                    f"mean_score={decision.get('mean_score')}, "
                    f"n_responses={decision.get('n_responses', 0)}",
                )
            )
            continue
        why = needs_edit(decision)
        if why and (require or not include_needs_edit or set(why) & set(UNRESOLVED)):
            tally["needs_edit"] += 1
            n_comments = len(decision.get("comments") or [])
            dropped.append(
                Dropped(
                    "apply_annotations",
                    "needs_edit",
                    record["id"],
                    f"verdict={decision['verdict']}, why={','.join(why)}, "
                    f"comments={n_comments} (see the pull's needs_edit.jsonl)",
                )
            )
            continue
        try:
            fixed, edits = apply_corrections(record, decision)
            issues = validate_record(fixed) if edits else []
        except CorrectionError as exc:
            issues = [str(exc)]
        if issues:
            tally["correction_invalid"] += 1
            dropped.append(
                Dropped(
                    "apply_annotations",
                    "correction_invalid",
                    record["id"],
                    "; ".join(str(i) for i in issues[:5]),
                )
            )
            continue
        for edit in edits:
            tally["edits"][edit["target"]] += 1
        fixed["annotation"] = {
            "verdict": decision["verdict"],
            "mean_score": None
            if decision.get("mean_score") is None
            else float(decision["mean_score"]),
            "n_responses": int(decision.get("n_responses", 0)),
            "corrected": sorted(e["target"] for e in edits),
            "edits": edits,
        }
        kept.append(fixed)
    if annotations.decisions and not tally["matched"]:
        tally["warning"] = (
            f"none of the {len(annotations.decisions)} decisions in {annotations.source} "
            "matches a record of this build (all unknown_id): the annotations come from "
            "another build; publish with the build the round was pushed from"
        )
        log.warning("%s", tally["warning"])
        print(f"mmloom publish: WARNING: {tally['warning']}", file=sys.stderr)
    tally["by_category"] = {k: dict(v) for k, v in tally["by_category"].items()}
    tally["verdicts"] = dict(sorted(tally["verdicts"].items()))
    tally["edits"] = dict(sorted(tally["edits"].items()))
    tally["audit"] = {
        cat: {code: dict(c) for code, c in sorted(codes.items())}
        for cat, codes in sorted(audit.items())
        if codes
    }
    annotations.tally = tally
    return kept, dropped


def _count_audit(
    counts: dict[str, dict[str, int]], record: dict[str, Any], decision: dict[str, Any] | None
) -> None:
    """Add one build record to the per-flag-code counts of its category: ``flagged`` (the
    build's flags), ``reviewed`` and the annotators' outcome (``confirmed``, ``cleared``,
    ``split``: the decision's ``audit`` entries for flags the record carries), and
    ``removed`` (a flagged record the human verdict or the harmful veto left out)."""
    codes = [f.get("code") for f in (record.get("audit") or {}).get("flags") or []]
    if not codes:
        return
    for code in codes:
        counts[code]["flagged"] += 1
    if decision is None:
        return
    left = list(codes)
    for review in (decision.get("audit") or {}).get("flags") or []:
        if review["code"] in left:  # a flag the record still carries
            left.remove(review["code"])
            counts[review["code"]]["reviewed"] += 1
            counts[review["code"]][review["outcome"]] += 1
    if decision.get("veto") or decision["verdict"] == "reject":
        for code in codes:
            counts[code]["removed"] += 1


def read_targets(path: str) -> dict[str, dict[str, int]]:
    """Read and check a targets file (YAML or JSON) of counts per category x field."""
    return selection.read_sizes(path, "targets file")


def select(
    records: Iterable[dict[str, Any]], targets: dict[str, dict[str, int]] | None, seed: int
) -> tuple[list[dict[str, Any]], list[Dropped], list[dict[str, Any]]]:
    """Stratified, seeded selection to target counts per category x field.

    Returns the kept records (sorted by id), the dropped ones, and one row per targeted cell:
    ``{category, field, target, available, selected}``.
    """
    records = list(records)
    if not targets:
        return sorted(records, key=lambda r: r["id"]), [], []
    kept: list[dict[str, Any]] = []
    dropped: list[Dropped] = []
    report: list[dict[str, Any]] = []
    for cell in selection.stratify(records, targets, seed):
        kept.extend(cell.kept)
        if cell.size is None:
            continue
        for r in cell.left:
            dropped.append(
                Dropped(
                    "select",
                    "not_selected",
                    r["id"],
                    f"{cell.category}/{cell.field}: target {cell.size}",
                )
            )
        report.append(
            {
                "available": len(cell.ranked),
                "category": cell.category,
                "field": cell.field,
                "selected": len(cell.kept),
                "target": cell.size,
            }
        )
    return sorted(kept, key=lambda r: r["id"]), dropped, report
