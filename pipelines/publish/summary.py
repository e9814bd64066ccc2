"""Release statistics computed from the published records: the numbers the card and report show.

Everything here is a pure function of the records, the build's stats and the publish drops, so
the card's tables can be checked against the data they describe.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections import Counter, defaultdict
from typing import Any

from pipelines.publish.audit_view import audit_summary
from schemas import load_schema, yamlsafe
from schemas.fs import sha256_size
from schemas.records import CATEGORIES

# MMIE's published distribution (docs/mmie-method.md §2.1: project page stats table and the
# field pie chart images/data.png). MSR has no published per-field breakdown.
MMIE_TOTAL = 20103
MMIE_CATEGORIES = {"SA": 5005, "PBL": 11482, "MSR": 3616}
MMIE_FIELDS = {
    ("SA", "Literature"): 5005,
    ("PBL", "Education"): 2835,
    ("PBL", "Finance"): 2604,
    ("PBL", "Health"): 2000,
    ("PBL", "EECS"): 1792,
    ("PBL", "Art"): 1304,
    ("PBL", "Sports"): 895,
    ("PBL", "Philosophy"): 52,
}
MMIE_FORMATS = {"multiple_choice": 663, "open_ended": 19340}  # sums to 20,003, not 20,103
MMIE_IMAGES_PER_QUESTION = 1.32
MMIE_QUESTION_LENGTH = "76.0 (unit not stated)"

MIN_PAIRED_ITEMS = 2  # alpha is shown only over at least this many items judged twice or more

CATEGORY_NAMES = {
    "SA": "situational analysis",
    "PBL": "project-based learning",
    "MSR": "multi-step reasoning",
    "IF": "instruction following (MIA-Bench style)",
}


# Scripts the language detector knows: (name, code points, language code). Latin script is
# reported as English: mmloom's sources write Latin-script text in English only, and telling
# Latin-script languages apart needs a word list, which this detector does without.
_SCRIPTS = (
    ("cjk", ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)), "zh"),
    ("kana", ((0x3040, 0x30FF), (0x31F0, 0x31FF)), "ja"),
    ("hangul", ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)), "ko"),
    ("arabic", ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)), "ar"),
    ("hebrew", ((0x0590, 0x05FF),), "he"),
    ("cyrillic", ((0x0400, 0x04FF),), "ru"),
    ("devanagari", ((0x0900, 0x097F),), "hi"),
    ("thai", ((0x0E00, 0x0E7F),), "th"),
    ("greek", ((0x0370, 0x03FF),), "el"),
)
_PERSIAN_LETTERS = set("پچژگ")  # in Persian, not in Arabic
_LATIN_WORD = re.compile(r"[A-Za-z]*[a-z][A-Za-z]+")  # a word with lower case: not "ABC"
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic",
    "fa": "Persian", "he": "Hebrew", "ru": "Russian", "hi": "Hindi", "th": "Thai",
    "el": "Greek",
}  # fmt: skip


def _script(ch: str) -> str | None:
    cp = ord(ch)
    for name, ranges, _ in _SCRIPTS:
        if any(lo <= cp <= hi for lo, hi in ranges):
            return name
    return None


def languages(text: str) -> list[str]:
    """The languages of ``text`` by script (ISO 639-1 codes, sorted): a dependency-free guess.

    A script counts from 2 letters on; Greek only when it is most of the letters (math
    writes α, θ, π in English text); Arabic script is Persian (``fa``) when it has a letter
    only Persian uses (پ چ ژ گ); kana makes CJK text Japanese; Latin-script text counts as
    English when it has two words with a lower-case letter (point labels like "ABC" do not).
    """
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha() and ord(ch) > 0x24F:
            script = _script(ch)
            if script:
                counts[script] += 1
    letters = sum(counts.values()) + sum(1 for ch in text if ch.isascii() and ch.isalpha())
    found = set()
    for name, _, code in _SCRIPTS:
        n = counts[name]
        if n < 2 or (name == "greek" and n * 2 <= letters):
            continue
        if name == "arabic" and _PERSIAN_LETTERS & set(text):
            code = "fa"
        if name == "cjk" and counts["kana"] >= 2:
            code = "ja"
        found.add(code)
    if len(_LATIN_WORD.findall(text)) >= 2:
        found.add("en")
    return sorted(found)


def clip_is_untrained(models: list[str]) -> bool:
    """Whether the CLIP scores come from mmloom's tiny test model, whose scores mean nothing
    (the sample config's ``mmloom-tiny-clip``; any model id naming a tiny model)."""
    return any("tiny" in m.lower() for m in models)


def clip_thresholds(settings: Any) -> dict[str, float]:
    """The per-category minimum CLIP scores of the build (empty when none were set)."""
    if not isinstance(settings, dict):
        return {}
    flat = settings.get("settings", settings)
    thresholds = flat.get("thresholds") if isinstance(flat, dict) else None
    return dict(thresholds) if isinstance(thresholds, dict) else {}


def category_order(category: str) -> tuple:
    """Sort key: mmloom's categories in their order (SA, PBL, MSR, IF), then any other."""
    known = category in CATEGORIES
    return (not known, CATEGORIES.index(category) if known else 0, category)


def _number(value: Any) -> float | None:
    """A finite number, else None (agreement.json is an input: anything may be in it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def agreement_rows(agreement: Any) -> list[dict[str, Any]]:
    """agreement.json's per-question figures (``mmloom annotate pull``'s ``questions``) as
    rows: one ``scope="all"`` row per question, then one per category asking it.

    Each row: ``question, scope, level, alpha, ci (None or [lo, hi]), percent, pairable,
    units``; alpha, ci and percent are finite numbers or None. Alpha (and its interval) is
    None (n/a) where fewer than ``MIN_PAIRED_ITEMS`` items were judged by two or more
    annotators. Empty when the file has no
    ``questions`` section in that shape.
    """
    questions = agreement.get("questions") if isinstance(agreement, dict) else None
    if not isinstance(questions, dict):
        return []
    rows = []

    def row(name: str, scope: str, entry: Any) -> None:
        if not isinstance(entry, dict):
            return
        ci = entry.get("alpha_ci95")
        ci = [_number(v) for v in ci] if isinstance(ci, list) and len(ci) == 2 else None
        pairable = entry.get("pairable_units")
        alpha = _number(entry.get("alpha"))
        if isinstance(pairable, int) and pairable < MIN_PAIRED_ITEMS:
            alpha = ci = None  # one shared item says nothing about agreement: n/a
        rows.append(
            {
                "question": name,
                "scope": scope,
                "level": entry.get("level"),
                "alpha": alpha,
                "ci": ci if ci and None not in ci else None,
                "percent": _number(entry.get("percent_agreement")),
                "pairable": entry.get("pairable_units"),
                "units": entry.get("units"),
            }
        )

    for name, entry in questions.items():
        row(str(name), "all", entry)
        by_cat = entry.get("by_category") if isinstance(entry, dict) else None
        for cat in sorted(by_cat or {}, key=category_order):
            row(str(name), str(cat), by_cat[cat])
    return rows


def audit_review_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows of the audit-review table (card and report): category, flag code, counts."""
    return [[r["category"], r["code"], *(r[k] for k in AUDIT_REVIEW_KEYS)] for r in rows]


def numeric_leaves(obj: Any, prefix: str = "", limit: int = 40) -> list[tuple[str, float]]:
    """Scalar numbers of a JSON value keyed by dotted path, skipping lists (for an
    agreement.json without a ``questions`` section); at most ``limit``."""
    out: list[tuple[str, float]] = []
    if isinstance(obj, bool) or obj is None:
        return out
    if isinstance(obj, int | float):
        return [(prefix or "value", float(obj))]
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            out += numeric_leaves(obj[k], f"{prefix}.{k}" if prefix else str(k), limit)
            if len(out) >= limit:
                break
    return out[:limit]


def words(text: str) -> int:
    """Whitespace-separated tokens: the unit of the card's question length."""
    return len(text.split())


def question_text(record: dict[str, Any]) -> str:
    return " ".join(s["text"] for s in record["question"] if s["text"])


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _cat_order(item: tuple[tuple[str, ...], int]) -> tuple:
    key = item[0]
    return (CATEGORIES.index(key[0]), *key[1:])


def describe_checkpoint(value: str, config_dir: str | None) -> str:
    """How a release names the build's local CLIP checkpoint: its file name and sha256, never
    its path on the build machine. ``value`` is the config's ``clip.checkpoint``, relative
    to the config's folder ``config_dir`` unless absolute."""
    name = os.path.basename(value.rstrip("/")) or value
    path = value if os.path.isabs(value) or "://" in value else None
    if path is None and config_dir:
        path = os.path.join(config_dir, value)
    if path is not None and os.path.isfile(path):
        return f"local checkpoint {name}, sha256 {sha256_size(path)[0]}"
    return f"local checkpoint {name} (not found where the build read it: no checksum)"


def _name_checkpoint(clip: dict[str, Any] | None, config_dir: str | None) -> None:
    """Replace the CLIP settings' ``checkpoint`` path by :func:`describe_checkpoint`."""
    if not isinstance(clip, dict):
        return
    for block in (clip, clip.get("settings")):
        if isinstance(block, dict) and isinstance(block.get("checkpoint"), str):
            block["checkpoint"] = describe_checkpoint(block["checkpoint"], config_dir)


def build_settings(stats: dict[str, Any], build_dir: str) -> dict[str, Any]:
    """The dedupe and CLIP settings of the build, from stats.json or the build's config file.

    stats.json sections ``dedupe`` and ``clip`` (written by those stages) win. Otherwise the
    config file named in stats.json is read if it still exists and its sha256 matches
    ``config_sha256``, and the schema's defaults are filled in. ``origin`` says which. A
    local CLIP checkpoint is named by its file name and sha256 (:func:`describe_checkpoint`).
    """
    out = _build_settings(stats, build_dir)
    config = stats.get("config")
    local = isinstance(config, str) and "://" not in config and os.path.isabs(config)
    _name_checkpoint(out["clip"], os.path.dirname(config) if local else None)
    return out


def _build_settings(stats: dict[str, Any], build_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {"dedupe": None, "clip": None, "origin": {}}
    for key in ("dedupe", "clip"):
        if isinstance(stats.get(key), dict):
            out[key] = copy.deepcopy(stats[key])
            out["origin"][key] = "stats.json"
    config_path = stats.get("config")
    if not config_path or (out["dedupe"] is not None and out["clip"] is not None):
        return out
    candidates = [config_path, os.path.join(build_dir, config_path)]
    for path in candidates:
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != stats.get("config_sha256"):
            continue
        config = yamlsafe.load(data) or {}
        defs = load_schema("config")["$defs"]
        for key in ("dedupe", "clip"):
            if out[key] is not None:
                continue
            block = dict(config.get(key) or {})
            for name, prop in defs[key]["properties"].items():
                if name not in block and "default" in prop:
                    block[name] = prop["default"]
            out[key] = {"settings": block}
            out["origin"][key] = "build config (schema defaults filled in)"
        break
    return out


def summarize(
    records: list[dict[str, Any]],
    stats: dict[str, Any],
    publish_dropped: list[dict[str, Any]],
    selection: list[dict[str, Any]],
    agreement: Any,
    settings: dict[str, Any],
    tally: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All the numbers of the card and the report, from the published records (and, for the
    human round, ``tally``: what :func:`pipelines.publish.inputs.apply_decisions` counted)."""
    by_cat = Counter(r["category"] for r in records)
    by_field = Counter((r["category"], r["field"]) for r in records)
    by_sub = Counter((r["category"], r["field"], r["subfield"]) for r in records)
    by_format = Counter((r["category"], r["question_format"]) for r in records)
    by_source = Counter(r["provenance"]["source"] for r in records)
    licences: dict[str, set[str]] = defaultdict(set)
    image_licences: dict[str, Counter[str]] = defaultdict(Counter)
    by_language: Counter[str] = Counter()
    for r in records:
        licences[r["provenance"]["source"]].add(r["provenance"]["license"])
        for im in r["images"]:
            image_licences[r["provenance"]["source"]][im["license"] or "not stated"] += 1
        by_language.update(languages(question_text(r)) or ["und"])
    q_images = [sum(1 for s in r["question"] if s["image"]) for r in records]
    a_images = [sum(1 for s in r["answer"] if s["image"]) for r in records]
    q_words = [words(question_text(r)) for r in records]
    q_chars = [len(question_text(r)) for r in records]
    per_cat: dict[str, dict[str, Any]] = {}
    for cat in CATEGORIES:
        idx = [i for i, r in enumerate(records) if r["category"] == cat]
        if not idx:
            continue
        per_cat[cat] = {
            "count": len(idx),
            "images_per_question": _mean([q_images[i] for i in idx]),
            "images_per_answer": _mean([a_images[i] for i in idx]),
            "question_words": _mean([q_words[i] for i in idx]),
            "question_chars": _mean([q_chars[i] for i in idx]),
        }
    clip_models = sorted(
        {r["scores"]["clip"]["model"] for r in records if r["scores"]["clip"]["scored"]}
    )
    clip_scores: dict[str, list[float]] = defaultdict(list)
    not_scored_reasons = Counter(
        r["scores"]["clip"]["reason"] or "not stated"
        for r in records
        if not r["scores"]["clip"]["scored"]
    )
    for r in records:
        clip = r["scores"]["clip"]
        if clip["scored"]:
            clip_scores[r["category"]].extend(p["score"] for p in clip["pairs"])
    publish_reasons = Counter((d["stage"], d["reason"]) for d in publish_dropped)
    build_drops: dict[tuple[str, str], int] = Counter()
    for source in (stats.get("sources") or {}).values():
        for stage, reasons in (source.get("dropped_by_stage") or {}).items():
            for reason, n in reasons.items():
                build_drops[(stage, reason)] += n
    return {
        "total": len(records),
        "categories": {c: by_cat[c] for c in CATEGORIES if by_cat[c]},
        "fields": {f"{c}/{f}": n for (c, f), n in sorted(by_field.items(), key=_cat_order)},
        "subfields": [
            {"category": c, "field": f, "subfield": s, "count": n}
            for (c, f, s), n in sorted(by_sub.items(), key=_cat_order)
        ],
        "formats": {
            cat: {
                "multiple_choice": by_format[(cat, "multiple_choice")],
                "open_ended": by_format[(cat, "open_ended")],
            }
            for cat in CATEGORIES
            if by_cat[cat]
        },
        "format_totals": {
            "multiple_choice": sum(
                n for (_, fmt), n in by_format.items() if fmt == "multiple_choice"
            ),
            "open_ended": sum(n for (_, fmt), n in by_format.items() if fmt == "open_ended"),
        },
        "sources": dict(sorted(by_source.items())),
        "licences": {s: sorted(v) for s, v in sorted(licences.items())},
        "image_licences": {s: sorted(v) for s, v in sorted(image_licences.items())},
        "image_licence_counts": {
            s: dict(sorted(v.items())) for s, v in sorted(image_licences.items())
        },
        "languages": dict(sorted(by_language.items(), key=lambda kv: (-kv[1], kv[0]))),
        "images_per_question": _mean(q_images),
        "images_per_answer": _mean(a_images),
        "question_images_histogram": {str(k): v for k, v in sorted(Counter(q_images).items())},
        "question_words": _mean(q_words),
        "question_chars": _mean(q_chars),
        "per_category": per_cat,
        "clip": {
            "scored_records": sum(1 for r in records if r["scores"]["clip"]["scored"]),
            "models": clip_models,
            "not_scored": dict(sorted(not_scored_reasons.items())),
            "scores": {c: sorted(v) for c, v in sorted(clip_scores.items())},
            "settings": settings.get("clip"),
        },
        "dedupe": settings.get("dedupe"),
        "audit_patterns": audit_summary(records, stats),
        "settings_origin": settings.get("origin", {}),
        "annotation": annotation_summary(records, agreement, tally),
        "selection": selection,
        "build": {
            "name": stats.get("build"),
            "contact": stats.get("contact"),
            "config_sha256": stats.get("config_sha256"),
            "mmloom_version": stats.get("mmloom_version"),
            "totals": stats.get("totals"),
            "reconciled": stats.get("reconciled"),
            "drops": [
                {"stage": s, "reason": r, "count": n} for (s, r), n in sorted(build_drops.items())
            ],
        },
        "publish_drops": [
            {"stage": s, "reason": r, "count": n} for (s, r), n in sorted(publish_reasons.items())
        ],
    }


def coverage_line(judged: int, total: int, responses: list[int]) -> str:
    """What happened in the human round, in one sentence: how many published items were
    judged, and by how many annotators each."""
    if not judged:
        return f"None of the {total} published items was judged by human annotators."
    lo, hi = min(responses), max(responses)
    each = f"{lo}" if lo == hi else f"{lo} to {hi}"
    return (
        f"{judged} of {total} published items were judged by human annotators, each by "
        f"{each} annotator{'s' if hi != 1 else ''}."
    )


def annotation_summary(
    records: list[dict[str, Any]], agreement: Any, tally: dict[str, Any] | None
) -> dict[str, Any]:
    """The human round as the card and report show it: coverage per category (published
    items, and how many of them were judged), verdicts, vetoes, edits, the coverage line,
    agreement, and the warning when no decision matched the build."""
    annotated = [r["annotation"] for r in records if r.get("annotation")]
    tally = tally or {}
    per_cat: dict[str, dict[str, int]] = {}
    for cat in sorted({r["category"] for r in records} | set(tally.get("by_category", {})),
                      key=category_order):  # fmt: skip
        published = [r for r in records if r["category"] == cat]
        counts = tally.get("by_category", {}).get(cat, {})
        per_cat[cat] = {
            "build": int(counts.get("build", 0)),
            "decided": int(counts.get("decided", 0)),
            "vetoed": int(counts.get("vetoed", 0)),
            "published": len(published),
            "judged": sum(1 for r in published if r.get("annotation")),
        }
    responses = [a["n_responses"] for a in annotated]
    edits = Counter(e["target"] for a in annotated for e in a.get("edits") or [])
    return {
        "annotated": len(annotated),
        "verdicts": dict(sorted(Counter(a["verdict"] for a in annotated).items())),
        "corrected": sum(1 for a in annotated if a["corrected"]),
        "mean_responses": _mean(responses),
        "responses_range": [min(responses), max(responses)] if responses else None,
        "coverage": per_cat,
        "coverage_line": coverage_line(len(annotated), len(records), responses),
        "decisions": tally.get("decisions"),
        "matched": tally.get("matched"),
        "unknown_id": tally.get("unknown_id"),
        "decision_verdicts": tally.get("verdicts") or {},
        "vetoed": tally.get("vetoed", 0),
        "needs_edit": tally.get("needs_edit", 0),
        "correction_invalid": tally.get("correction_invalid", 0),
        "edits": dict(sorted(edits.items())),
        "warning": tally.get("warning"),
        "responses": tally.get("responses"),
        "agreement": agreement,
        "audit_review": audit_review_rows(tally.get("audit") or {}),
    }


AUDIT_REVIEW_KEYS = ("flagged", "reviewed", "confirmed", "cleared", "split", "removed")


def audit_review_rows(audit: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    """The human review of the validity-audit flags, one row per category x flag code (then
    a ``total`` row): flags in the build, reviewed by annotators, confirmed, cleared, split
    evenly, and flags on items the human verdict or veto removed. Empty when no build record
    had a flag."""
    rows = [
        {"category": cat, "code": code, **{k: int(counts.get(k, 0)) for k in AUDIT_REVIEW_KEYS}}
        for cat in sorted(audit, key=category_order)
        for code, counts in sorted(audit[cat].items())
    ]
    if rows:
        total = {k: sum(r[k] for r in rows) for k in AUDIT_REVIEW_KEYS}
        rows.append({"category": "total", "code": "", **total})
    return rows


def dumps(obj: Any) -> str:
    """Canonical JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
