"""What a publish reads: the build's records and stats, annotation decisions, selection targets.

Records are streamed from the build once and only their JSON views (metadata, a few KB each)
stay in memory. Images stay in the build's content-addressed store
(``<build>/images/<sha256>.<ext>``); the shard writer reads them one row group at a time, so a
release of tens of thousands of items never holds its pictures in RAM.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas import yamlsafe
from schemas.buildio import read_records, read_stats, require_complete
from schemas.errors import MmloomError
from schemas.records import CATEGORIES, FIELDS
from schemas.store import ImageStore
from schemas.validation import validate_record

VERDICTS = ("accept", "fix", "reject")
CORRECTABLE = ("field", "subfield")


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
        if not isinstance(value, str) or not value:
            return f"correction {key!r} must be a non-empty string"
    score = obj.get("mean_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        return "'mean_score' must be a number or null"
    n = obj.get("n_responses", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return "'n_responses' must be a non-negative integer"
    return None


def read_annotations(annotations_dir: str) -> Annotations:
    """Read ``decisions.jsonl`` (required) and ``agreement.json`` (optional).

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
    return Annotations(decisions, agreement, rejected, annotations_dir)


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


def apply_decisions(
    records: list[dict[str, Any]],
    annotations: Annotations | None,
    require: bool,
    include_needs_edit: bool = False,
) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """Drop rejected records, hold back those that need an edit, apply corrections and
    re-validate.

    A decision that needs an edit (:func:`needs_edit`: a fix without an applicable
    correction, an impossible field/subfield pair, an unresolved tie) is dropped with reason
    ``needs_edit`` unless ``include_needs_edit``; with ``require`` (``--require-annotation``)
    it is always dropped, so only accepted records and records with an applied fix are
    published. Each published record gains ``annotation``: ``{verdict, mean_score,
    n_responses, corrected}`` or None when it has no decision. Returns the kept records
    (input order) and what was dropped.
    """
    dropped: list[Dropped] = []
    if annotations is None:
        if require:
            raise MmloomError("--require-annotation needs --annotations DIR")
        return [{**r, "annotation": None} for r in records], dropped
    kept: list[dict[str, Any]] = []
    known = {r["id"] for r in records}
    for rid in sorted(set(annotations.decisions) - known):
        dropped.append(
            Dropped("read_annotations", "unknown_id", rid, "the build holds no record with this id")
        )
    for record in records:
        decision = annotations.decisions.get(record["id"])
        if decision is None:
            if require:
                dropped.append(
                    Dropped("apply_annotations", "not_annotated", record["id"], "no decision")
                )
            else:
                kept.append({**record, "annotation": None})
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
        if why and (require or not include_needs_edit):
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
        corrections = decision.get("corrections") or {}
        fixed = copy.deepcopy(record)
        fixed.update({k: corrections[k] for k in sorted(corrections)})
        issues = validate_record(fixed) if corrections else []
        if issues:
            dropped.append(
                Dropped(
                    "apply_annotations",
                    "correction_invalid",
                    record["id"],
                    "; ".join(str(i) for i in issues[:5]),
                )
            )
            continue
        fixed["annotation"] = {
            "verdict": decision["verdict"],
            "mean_score": None
            if decision.get("mean_score") is None
            else float(decision["mean_score"]),
            "n_responses": int(decision.get("n_responses", 0)),
            "corrected": sorted(k for k in corrections if corrections[k] != record[k]),
        }
        kept.append(fixed)
    return kept, dropped


def read_targets(path: str) -> dict[str, dict[str, int]]:
    """Read and check a targets file (YAML or JSON) of counts per category x field."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yamlsafe.load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise MmloomError(f"cannot read targets file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MmloomError(f"{path} must map category -> field -> count, e.g. {{PBL: {{Art: 10}}}}")
    out: dict[str, dict[str, int]] = {}
    for cat, cells in data.items():
        if cat not in CATEGORIES:
            raise MmloomError(f"{path}: unknown category {cat!r}; use one of {list(CATEGORIES)}")
        if not isinstance(cells, dict):
            raise MmloomError(f"{path}: {cat} must map field -> count")
        for fld, n in cells.items():
            if fld != "*" and fld not in FIELDS:
                raise MmloomError(f"{path}: unknown field {fld!r}; use '*' or one of {FIELDS}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise MmloomError(f"{path}: {cat}/{fld} must be a non-negative integer")
        out[str(cat)] = {str(k): int(v) for k, v in cells.items()}
    return out


def _rank(seed: int, rid: str) -> str:
    return hashlib.sha256(f"{seed}:{rid}".encode()).hexdigest()


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
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cells[(r["category"], r["field"])].append(r)
    kept: list[dict[str, Any]] = []
    dropped: list[Dropped] = []
    report: list[dict[str, Any]] = []
    all_cells = set(cells)
    for cat, fields in targets.items():
        for fld in fields:
            if fld != "*":
                all_cells.add((cat, fld))
    for cat, fld in sorted(all_cells):
        members = cells.get((cat, fld), [])
        spec = targets.get(cat)
        target = None if spec is None else spec.get(fld, spec.get("*"))
        if target is None:
            kept.extend(members)
            continue
        ranked = sorted(members, key=lambda r: _rank(seed, r["id"]))
        kept.extend(ranked[:target])
        for r in ranked[target:]:
            dropped.append(
                Dropped("select", "not_selected", r["id"], f"{cat}/{fld}: target {target}")
            )
        report.append(
            {
                "available": len(members),
                "category": cat,
                "field": fld,
                "selected": min(target, len(members)),
                "target": target,
            }
        )
    return sorted(kept, key=lambda r: r["id"]), dropped, report
