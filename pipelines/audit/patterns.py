"""The model-free audit: answer patterns a model could exploit without the images.

Pure functions (no Beam); :class:`pipelines.audit.stages.AuditAnswerPatterns` runs the same
steps over a whole build, and :func:`audit` runs them in memory (tests, ``bench/``).

**Cells.** Statistics are computed per *cell*, so that one source's habits do not hide in
another's:

* multiple choice: ``source / field``;
* open-ended: ``source / subfield / template``. The *question template* is the source's own
  fixed prompt where it has one (``source_metadata.prompt``: VIST's "Continue the story: ...")
  and otherwise the first ``template_words`` words of the normalised question stem with every
  number replaced by ``#`` (MathVista "how many objects are", "what is the value"; wikiHow
  "how to make a"): a rough, documented stand-in for the template a question was written from.

**What is measured.**

* *Answer positions* (multiple choice): how often the answer is option A, B, ... against
  uniform. Items with different numbers of options are different experiments, so the test is
  stratified: one Pearson chi-square per option count ``k`` (expected ``n_k / k`` per
  position), summed with their degrees of freedom (independent strata: the sum is chi-square
  with the summed df). A stratum enters the test only when every expected count is at least
  :data:`MIN_EXPECTED` (Cochran's rule); the p-value is the exact chi-square tail
  (:func:`chi2_sf`, the regularised upper incomplete gamma function).
* *Longest / shortest option*: how often the answer is the item's unique longest (shortest)
  option, by characters. If positions were assigned at random the chance is ``1/k``; the count
  of hits is then a sum of binomials, and the p-value is its exact upper tail
  (:func:`binomial_sum_sf`). Items whose longest (shortest) option is tied do not count.
* *Blind heuristics*: accuracy of "always the longest option", "always the shortest option"
  (first one on ties), and "always the most frequent position" (leave-one-out: each item is
  guessed from the other items of its cell, so the figure is not fitted to the item itself),
  beside chance (the mean of ``1/k``).
* *Answer in the question*: the answer's text appears, as whole words, in the question stem
  (multiple choice: and no other option's text does; open-ended: single-segment,
  answers that are not numbers nor yes/no/true/false, which questions name as the replies).
* *Most frequent answer* (open-ended): accuracy, leave-one-out, of guessing the most frequent
  answer of the item's cell (ties: the smallest text).
* *Repeated answers*: an answer (or one answer segment: a VIST storylet, a wikiHow step) of at
  least ``repeated_answer_min_words`` words repeated verbatim (after normalisation) in at
  least ``repeated_answer_min_items`` items.

**Deciding what is a bias.** A cell smaller than ``min_cell_items`` is reported as "too few
items" and never flagged. The position, longest and shortest tests of all cells form one
family, corrected with Holm's step-down method (it controls the family-wise error rate at
``alpha`` under any dependence). The most-frequent-answer baseline has no natural chance
rate: a cell is biased when its leave-one-out accuracy reaches ``frequent_answer_min_accuracy``.

**Flags.** An item is flagged only when its cell's bias is established *and* the item follows
it (its answer sits at an over-represented position, with standardised residual at least
:data:`MIN_RESIDUAL`; is the longest option of a longest-biased cell; ...). Answer-in-question
and repeated-answer flags are evidence about the item itself. A flag is evidence for review,
never a verdict: it drops nothing (only ``DropFlagged`` may, for the codes configured).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from pipelines.config import AuditConfig
from pipelines.dedupe import text
from schemas.audit import AuditFlag, flag

STAGE = "audit_patterns"
MULTIPLE_CHOICE = "multiple_choice"
OPEN_ENDED = "open_ended"

# flag codes
ANSWER_POSITION_BIAS = "answer_position_bias"
LONGEST_OPTION = "longest_option"
SHORTEST_OPTION = "shortest_option"
ANSWER_IN_QUESTION = "answer_in_question"
FREQUENT_ANSWER = "frequent_answer"
REPEATED_ANSWER = "repeated_answer"
CODES = (
    ANSWER_POSITION_BIAS,
    LONGEST_OPTION,
    SHORTEST_OPTION,
    ANSWER_IN_QUESTION,
    FREQUENT_ANSWER,
    REPEATED_ANSWER,
)

MIN_EXPECTED = 5.0  # Cochran's rule: a chi-square stratum needs >= 5 expected per position
MIN_RESIDUAL = 2.0  # an over-represented position: (observed - expected) / sqrt(expected)
MAX_LISTED = 20  # repeated answers listed in the report
MAX_TEXT = 120  # characters of an answer quoted in a reason or the report
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMERIC = re.compile(r"^[\d\s.,+-]+$")
# open-ended answers that a question names as the allowed replies ("yes or no?"): not a leak
_REPLY_WORDS = frozenset({"yes", "no", "true", "false"})


# ----------------------------------------------------------------------------- statistics


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series or Lentz continued fraction)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P, then 1 - P
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_sf(stat: float, df: int) -> float:
    """P(X >= stat) for X chi-square with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("chi-square needs df >= 1")
    return _gamma_q(df / 2.0, stat / 2.0)


def binomial_pmf(n: int, p: float) -> np.ndarray:
    """The probabilities of 0..n successes in ``n`` trials of chance ``p`` (0 < p < 1)."""
    k = np.arange(n + 1, dtype=np.float64)
    lgam = np.vectorize(math.lgamma, otypes=[np.float64])
    log_pmf = (
        math.lgamma(n + 1)
        - lgam(k + 1)
        - lgam(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return np.exp(log_pmf)


def binomial_sum_sf(trials: dict[int, int], hits: int) -> float:
    """P(X >= hits) for X the sum of independent Binomial(n_k, 1/k), ``trials`` = {k: n_k}."""
    pmf = np.ones(1)
    for k, n in sorted(trials.items()):
        if n <= 0:
            continue
        other = binomial_pmf(n, 1.0 / k)
        if len(pmf) * len(other) <= 4_000_000:
            pmf = np.convolve(pmf, other)
        else:  # large: FFT (absolute error ~1e-15, far below any alpha)
            size = len(pmf) + len(other) - 1
            pmf = np.fft.irfft(np.fft.rfft(pmf, size) * np.fft.rfft(other, size), size)
            pmf = np.clip(pmf, 0.0, None)
    if hits <= 0:
        return 1.0
    if hits >= len(pmf):
        return 0.0
    return float(min(1.0, max(0.0, pmf[hits:].sum())))


def position_test(positions: dict[int, list[int]]) -> dict[str, Any]:
    """The stratified chi-square of answer positions against uniform.

    Args:
        positions: ``{k: [count at position 0, ..., k-1]}`` for items with ``k`` options.
    Returns: ``{"chi2", "df", "p", "strata", "too_small"}``: the statistic, its degrees of
    freedom and p-value over the strata with at least :data:`MIN_EXPECTED` expected per
    position (``p`` None when none qualifies), and the option counts left out.
    """
    stat, df, used, left = 0.0, 0, [], []
    for k, counts in sorted(positions.items()):
        n = sum(counts)
        expected = n / k
        if expected < MIN_EXPECTED:
            if n:
                left.append(k)
            continue
        stat += sum((o - expected) ** 2 / expected for o in counts)
        df += k - 1
        used.append(k)
    p = chi2_sf(stat, df) if df else None
    return {"chi2": round(stat, 6), "df": df, "p": p, "strata": used, "too_small": left}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def loo_hits(counts: dict[str, int]) -> dict[str, bool]:
    """For each answer, is it guessed right when guessing from the *other* items?

    Leave-one-out "most frequent answer": an item with answer ``a`` (``c_a`` items) is guessed
    from the rest, where ``a`` has ``c_a - 1``; the guess is the most frequent answer there,
    ties broken by the smallest text. Only answers held by two items or more can be guessed.
    """
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = {}
    for a, c in counts.items():
        if c < 2:
            out[a] = False
            continue
        rival = next(((b, cb) for b, cb in ranked if b != a), None)
        out[a] = rival is None or c - 1 > rival[1] or (c - 1 == rival[1] and a < rival[0])
    return out


def loo_accuracy(counts: dict[str, int]) -> float:
    """Leave-one-out accuracy of the most-frequent-answer guess over a cell's items."""
    n = sum(counts.values())
    if not n:
        return 0.0
    hits = loo_hits(counts)
    return sum(c for a, c in counts.items() if hits[a]) / n


# ----------------------------------------------------------------------------- item views


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    meta = record.get("source_metadata")
    return meta if isinstance(meta, dict) else {}


def stem_text(record: dict[str, Any]) -> str:
    """The question stem: the source's own question text where it keeps one
    (``source_metadata.question``, MathVista), else the question's text without the fixed
    prompt and without the lines that list the options (``(A) ...``)."""
    own = _metadata(record).get("question")
    if isinstance(own, str) and own.strip():
        return own
    listed = {f"({o['label']}) {o['text']}" for o in record.get("options") or []}
    lines = text.question_text(record).splitlines()
    return "\n".join(line for line in lines if line.strip() not in listed)


def template_of(record: dict[str, Any], words: int) -> str:
    """The question template (see the module docstring)."""
    prompt = _metadata(record).get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return "prompt: " + text.normalise(prompt)
    tokens = re.sub(r"\d+", "#", text.normalise(stem_text(record))).split()
    return " ".join(tokens[:words]) or "(no text)"


_TRAILING_ZEROS = re.compile(r"(\d)\.0+(?!\d)")
_DECIMAL_POINT = re.compile(r"(\d)[.,](\d)")


def match_text(s: str) -> str:
    """``s`` normalised for the answer-in-question match: numbers kept whole (``3.0`` is
    ``3``, ``0.5`` stays one token, so the ``5`` of ``0.5`` is not the answer ``5``), then
    :func:`pipelines.dedupe.text.normalise`."""
    s = _TRAILING_ZEROS.sub(r"\1", s)
    return text.normalise(_DECIMAL_POINT.sub(r"\1d\2", s))


def _phrase_in(phrase: str, haystack: str) -> bool:
    return bool(phrase) and f" {phrase} " in f" {haystack} "


def _quotable(norm: str) -> bool:
    """Is a normalised answer specific enough to count as appearing in a text? (a digit
    string, or two characters or more: a lone letter such as "a" is in every sentence)"""
    return bool(norm) and (len(norm) >= 2 or norm.isdigit())


def _short(s: str) -> str:
    s = " ".join(s.split())
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def item_view(record: dict[str, Any], settings: AuditConfig) -> dict[str, Any]:
    """The small view of a record the audit needs (what travels through the shuffles)."""
    prov = record.get("provenance") or {}
    source = prov.get("source", "?")
    view: dict[str, Any] = {"id": record["id"], "source": source}
    stem = match_text(stem_text(record))
    options = record.get("options") or []
    if record.get("question_format") == MULTIPLE_CHOICE and options:
        view["format"] = MULTIPLE_CHOICE
        view["cell"] = f"{source} / {record.get('field')}"
        labels = [o["label"] for o in options]
        k = len(options)
        pos = labels.index(record["answer_value"]) if record.get("answer_value") in labels else None
        view["k"], view["pos"] = k, pos
        if pos is None:
            return view
        lengths = [len(o["text"].strip()) for o in options]
        longest, shortest = max(lengths), min(lengths)
        view["longest"] = None if lengths.count(longest) > 1 else lengths[pos] == longest
        view["shortest"] = None if lengths.count(shortest) > 1 else lengths[pos] == shortest
        view["first_longest"] = lengths.index(longest)
        view["first_shortest"] = lengths.index(shortest)
        norms = [match_text(o["text"]) for o in options]
        answer = norms[pos]
        view["aiq_eligible"] = _quotable(answer)
        view["aiq"] = (
            _quotable(answer)
            and _phrase_in(answer, stem)
            and not any(
                _quotable(n) and _phrase_in(n, stem)
                for i, n in enumerate(norms)
                if i != pos and n != answer
            )
        )
        view["answer_text"] = _short(options[pos]["text"])
        return view
    view["format"] = OPEN_ENDED
    template = template_of(record, settings.template_words)
    view["cell"] = f"{source} / {record.get('subfield')} / {template}"
    segments = [s["text"] for s in record.get("answer") or [] if s.get("text")]
    answer = text.normalise("\n".join(segments))
    view["answer"] = answer
    view["answer_text"] = _short("\n".join(segments))
    view["aiq_eligible"] = (
        len(segments) == 1
        and _quotable(answer)
        and not _NUMERIC.match(answer)
        and answer not in _REPLY_WORDS
    )
    view["aiq"] = view["aiq_eligible"] and _phrase_in(match_text("\n".join(segments)), stem)
    keys = {text.normalise(s) for s in segments}
    if len(segments) > 1:
        keys.add(answer)
    view["repeat_keys"] = sorted(
        key for key in keys if len(key.split()) >= settings.repeated_answer_min_words
    )
    return view


# ----------------------------------------------------------------------------- counting

CellCounts = dict[str, Counter]


def count_view(view: dict[str, Any]) -> tuple[str, Counter]:
    """``(cell, counts)`` of one item: what its cell's statistics add up (a Counter of tuple
    keys, so cells merge by addition)."""
    c: Counter = Counter({("n",): 1})
    if view["format"] == MULTIPLE_CHOICE:
        k, pos = view["k"], view.get("pos")
        if pos is None:
            c[("unusable",)] += 1
            return view["cell"], c
        c[("pos", k, pos)] += 1
        c[("k", k)] += 1
        for name in ("longest", "shortest"):
            if view[name] is not None:
                c[(name + "_eligible", k)] += 1
                c[(name + "_hits", k)] += int(view[name])
            c[("first_" + name + "_hits",)] += int(view["first_" + name] == pos)
    c[("aiq_eligible",)] += int(bool(view.get("aiq_eligible")))
    c[("aiq",)] += int(bool(view.get("aiq")))
    return view["cell"], +c


def merge_counts(parts: Iterable[CellCounts]) -> CellCounts:
    """Add up ``{cell: Counter}`` maps."""
    out: CellCounts = {}
    for part in parts:
        for cell, c in part.items():
            out.setdefault(cell, Counter()).update(c)
    return out


def answer_key(view: dict[str, Any]) -> tuple[str, str] | None:
    """``(cell, answer)`` of an open-ended item (the most-frequent-answer baseline's unit)."""
    if view["format"] != OPEN_ENDED or not view.get("answer"):
        return None
    return view["cell"], view["answer"]


# ----------------------------------------------------------------------------- the report


def _split_cell(cell: str, fmt: str) -> dict[str, str]:
    parts = cell.split(" / ", 2)
    names = ("source", "field") if fmt == MULTIPLE_CHOICE else ("source", "subfield", "template")
    return dict(zip(names, parts, strict=False))


def _mc_cell(cell: str, c: Counter, settings: AuditConfig) -> dict[str, Any]:
    n = c[("n",)] - c[("unusable",)]
    ks = sorted({key[1] for key in c if key[0] == "k"})
    positions = {k: [c[("pos", k, j)] for j in range(k)] for k in ks}
    chance = sum(c[("k", k)] / k for k in ks)
    pos_counts = Counter()
    for k in ks:
        for j, o in enumerate(positions[k]):
            pos_counts[LETTERS[j]] += o
    out: dict[str, Any] = {
        "cell": cell,
        **_split_cell(cell, MULTIPLE_CHOICE),
        "items": n,
        "unusable": c[("unusable",)],
        "positions": {str(k): v for k, v in positions.items()},
        "position_counts": dict(sorted(pos_counts.items())),
        "position_share": {
            lab: round(o / n, 4) if n else 0.0 for lab, o in sorted(pos_counts.items())
        },
        "heuristics": {
            "chance": round(chance / n, 4) if n else None,
            "always_longest": round(c[("first_longest_hits",)] / n, 4) if n else None,
            "always_shortest": round(c[("first_shortest_hits",)] / n, 4) if n else None,
            "most_frequent_position": round(loo_accuracy(dict(pos_counts)), 4) if n else None,
        },
        "answer_in_question": c[("aiq",)],
        "answer_in_question_eligible": c[("aiq_eligible",)],
        "status": "tested" if n >= settings.min_cell_items else "too few items",
    }
    if out["status"] != "tested":
        return out
    out["position_test"] = position_test(positions)
    for name in ("longest", "shortest"):
        trials = {k: c[(name + "_eligible", k)] for k in ks}
        hits = sum(c[(name + "_hits", k)] for k in ks)
        eligible = sum(trials.values())
        out[name] = {
            "eligible": eligible,
            "hits": hits,
            "rate": round(hits / eligible, 4) if eligible else None,
            "chance": round(sum(n_k / k for k, n_k in trials.items()) / eligible, 4)
            if eligible
            else None,
            "p": binomial_sum_sf(trials, hits) if eligible else None,
        }
    return out


def analyse(
    cells: CellCounts,
    answer_counts: dict[str, dict[str, int]],
    repeated: dict[str, int],
    settings: AuditConfig,
) -> dict[str, Any]:
    """The audit report (stats.json ``audit``) from the counts of the whole build.

    Args:
        cells: ``{cell: Counter}`` (:func:`count_view` added up).
        answer_counts: open-ended ``{cell: {answer: items}}``, answers held by two items or
            more (the others are never guessed by the baseline).
        repeated: ``{answer text: items}`` of the texts held by at least
            ``repeated_answer_min_items`` items.
    """
    mc, oe = [], []
    for cell in sorted(cells):
        c = cells[cell]
        if any(key[0] == "k" for key in c) or c[("unusable",)]:
            mc.append(_mc_cell(cell, c, settings))
            continue
        n = c[("n",)]
        counts = answer_counts.get(cell, {})
        hits = loo_hits(counts)
        guessed = sum(v for a, v in counts.items() if hits[a])
        accuracy = guessed / n if n else 0.0
        tested = n >= settings.min_cell_items
        top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]), default=(None, 0))
        oe.append(
            {
                "cell": cell,
                **_split_cell(cell, OPEN_ENDED),
                "items": n,
                "baseline_accuracy": round(accuracy, 4),
                "baseline_hits": guessed,
                "most_frequent_answer": _short(top[0]) if top[0] is not None else None,
                "most_frequent_count": top[1],
                "answer_in_question": c[("aiq",)],
                "answer_in_question_eligible": c[("aiq_eligible",)],
                "status": "tested" if tested else "too few items",
                "frequent_answer_bias": tested
                and accuracy >= settings.frequent_answer_min_accuracy,
            }
        )
    # one family of tests: every tested multiple-choice cell's position, longest, shortest
    family = []
    for cell in mc:
        if cell["status"] != "tested":
            continue
        if cell["position_test"]["p"] is not None:
            family.append((cell["position_test"], "p"))
        for name in ("longest", "shortest"):
            if cell[name]["p"] is not None:
                family.append((cell[name], "p"))
    for (holder, _), adjusted in zip(family, holm([h[k] for h, k in family]), strict=True):
        holder["p_holm"] = adjusted
        holder["bias"] = adjusted <= settings.alpha
    for cell in mc:
        if cell["status"] != "tested":
            continue
        test = cell["position_test"]
        test.setdefault("bias", False)
        test.setdefault("p_holm", None)
        for name in ("longest", "shortest"):
            cell[name].setdefault("bias", False)
            cell[name].setdefault("p_holm", None)
            if cell[name]["bias"] and cell[name]["rate"] <= cell[name]["chance"]:
                cell[name]["bias"] = False  # one-sided: only an over-represented pattern
        cell["over_represented"] = _over_represented(cell) if test["bias"] else {}
    listed = sorted(repeated.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "stage": STAGE,
        "settings": {
            "alpha": settings.alpha,
            "correction": "holm",
            "min_cell_items": settings.min_cell_items,
            "min_expected_per_position": MIN_EXPECTED,
            "min_residual": MIN_RESIDUAL,
            "template_words": settings.template_words,
            "frequent_answer_min_accuracy": settings.frequent_answer_min_accuracy,
            "repeated_answer_min_items": settings.repeated_answer_min_items,
            "repeated_answer_min_words": settings.repeated_answer_min_words,
        },
        "tests": len(family),
        "multiple_choice": {"cells": mc, "by_source": _mc_by_source(mc)},
        "open_ended": {
            # only the tested cells are listed: templates can be many, and small
            "cells": [c for c in oe if c["status"] == "tested"],
            "untested_cells": sum(1 for c in oe if c["status"] != "tested"),
            "untested_items": sum(c["items"] for c in oe if c["status"] != "tested"),
            "by_source": _oe_by_source(oe),
        },
        "repeated_answers": {
            "texts": len(listed),
            "items": sum(v for _, v in listed),
            "top": [{"text": _short(t), "items": v} for t, v in listed[:MAX_LISTED]],
        },
    }


def _over_represented(cell: dict[str, Any]) -> dict[str, list[int]]:
    """``{k: [positions]}`` whose counts exceed uniform by :data:`MIN_RESIDUAL` or more."""
    out = {}
    for k in cell["position_test"]["strata"]:
        counts = cell["positions"][str(k)]
        expected = sum(counts) / k
        over = [
            j for j, o in enumerate(counts) if (o - expected) / math.sqrt(expected) >= MIN_RESIDUAL
        ]
        if over:
            out[str(k)] = over
    return out


def _mc_by_source(cells: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in cells:
        s = out.setdefault(
            cell["source"],
            {"items": 0, "position_counts": Counter(), "aiq": 0, "weighted": Counter()},
        )
        n = cell["items"]
        s["items"] += n
        s["aiq"] += cell["answer_in_question"]
        s["position_counts"].update(cell["position_counts"])
        for name, value in cell["heuristics"].items():
            if value is not None:
                s["weighted"][name] += value * n
    return {
        source: {
            "items": s["items"],
            "position_counts": dict(sorted(s["position_counts"].items())),
            "answer_in_question": s["aiq"],
            "heuristics": {
                name: round(v / s["items"], 4) for name, v in sorted(s["weighted"].items())
            }
            if s["items"]
            else {},
        }
        for source, s in sorted(out.items())
    }


def _oe_by_source(cells: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in cells:
        s = out.setdefault(cell["source"], {"items": 0, "hits": 0, "aiq": 0, "cells": 0})
        s["items"] += cell["items"]
        s["hits"] += cell["baseline_hits"]
        s["aiq"] += cell["answer_in_question"]
        s["cells"] += 1
    return {
        source: {
            "items": s["items"],
            "cells": s["cells"],
            "frequent_answer_baseline": round(s["hits"] / s["items"], 4) if s["items"] else 0.0,
            "answer_in_question": s["aiq"],
        }
        for source, s in sorted(out.items())
    }


# ----------------------------------------------------------------------------- flags


def index_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report by cell, for :func:`item_flags`."""
    return {
        "mc": {c["cell"]: c for c in report["multiple_choice"]["cells"]},
        "oe": {c["cell"]: c for c in report["open_ended"]["cells"]},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def item_flags(
    view: dict[str, Any],
    indexed: dict[str, Any],
    answer_counts: dict[str, dict[str, int]],
    repeated: dict[str, int],
    settings: AuditConfig,
    hits_cache: dict[str, dict[str, bool]] | None = None,
) -> list[AuditFlag]:
    """The flags of one item (see the module docstring); empty when none. ``hits_cache``
    keeps each cell's leave-one-out hits between calls (one dict per report)."""
    hits_cache = {} if hits_cache is None else hits_cache
    flags: list[AuditFlag] = []
    cell_name = view["cell"]
    if view["format"] == MULTIPLE_CHOICE:
        cell = indexed["mc"].get(cell_name)
        pos = view.get("pos")
        if cell is None or pos is None:
            return flags
        if cell.get("status") == "tested":
            k = view["k"]
            test = cell["position_test"]
            if test["bias"] and pos in cell["over_represented"].get(str(k), []):
                counts = cell["positions"][str(k)]
                share = counts[pos] / sum(counts)
                flags.append(
                    flag(
                        ANSWER_POSITION_BIAS,
                        STAGE,
                        f"In {cell_name}, the answer is option {LETTERS[pos]} in {_pct(share)} "
                        f"of the {sum(counts)} items with {k} options (uniform: {_pct(1 / k)}; "
                        f"chi-square p = {test['p_holm']:.2g} after Holm's correction). This "
                        f"item's answer is {LETTERS[pos]}, so always answering "
                        f"{LETTERS[pos]} gets it right without the image.",
                        share,
                        1 / k,
                    )
                )
            for name, code in (("longest", LONGEST_OPTION), ("shortest", SHORTEST_OPTION)):
                stat = cell[name]
                if stat["bias"] and view.get(name):
                    flags.append(
                        flag(
                            code,
                            STAGE,
                            f"In {cell_name}, the answer is the {name} option in "
                            f"{_pct(stat['rate'])} of items (chance {_pct(stat['chance'])}; "
                            f"p = {stat['p_holm']:.2g} after Holm's correction). This item's "
                            f"answer is its {name} option, so picking the {name} option "
                            "gets it right without the image.",
                            stat["rate"],
                            stat["chance"],
                        )
                    )
        if view.get("aiq"):
            flags.append(_aiq_flag(view, cell))
        return flags
    cell = indexed["oe"].get(cell_name)  # None: too few items (not listed)
    key = view.get("answer")
    if cell is not None and cell["frequent_answer_bias"] and key:
        counts = answer_counts.get(cell_name, {})
        if cell_name not in hits_cache:
            hits_cache[cell_name] = loo_hits(counts)
        if key in counts and hits_cache[cell_name][key]:
            flags.append(
                flag(
                    FREQUENT_ANSWER,
                    STAGE,
                    f"In {cell_name}, guessing the most frequent answer of the other items "
                    f"is right for {_pct(cell['baseline_accuracy'])} of the {cell['items']} "
                    f'items. This item\'s answer "{view["answer_text"]}" is that guess '
                    f"({counts[key]} items), so it can be answered without the image.",
                    cell["baseline_accuracy"],
                    settings.frequent_answer_min_accuracy,
                )
            )
    if view.get("aiq"):
        flags.append(_aiq_flag(view, cell))
    shared = [(repeated[k], k) for k in view.get("repeat_keys", []) if k in repeated]
    if shared:
        items, text_ = max(shared)
        flags.append(
            flag(
                REPEATED_ANSWER,
                STAGE,
                f'The answer text "{_short(text_)}" appears word for word in {items} items. '
                "A generic answer repeated this often can be written without the image.",
                items,
                settings.repeated_answer_min_items,
            )
        )
    return flags


def _aiq_flag(view: dict[str, Any], cell: dict[str, Any] | None) -> AuditFlag:
    rate = None
    if cell and cell.get("answer_in_question_eligible"):
        rate = cell["answer_in_question"] / cell["answer_in_question_eligible"]
    where = "" if rate is None else f" ({_pct(rate)} of such items in {view['cell']})"
    other = " and no other option's text does" if view["format"] == MULTIPLE_CHOICE else ""
    return flag(
        ANSWER_IN_QUESTION,
        STAGE,
        f'The answer "{view["answer_text"]}" is written in the question itself{other}'
        f"{where}: the question may give its answer away.",
        rate,
        None,
    )


# ----------------------------------------------------------------------------- in memory


def audit(
    records: Iterable[dict[str, Any]], settings: AuditConfig | None = None
) -> tuple[dict[str, Any], dict[str, list[AuditFlag]]]:
    """The whole model-free audit in memory: ``(report, {id: flags})``. The Beam stage runs
    the same functions over a build (and adds the flag counts to the report)."""
    settings = settings or AuditConfig.from_block()
    views = [item_view(r, settings) for r in records]
    cells = merge_counts([dict([count_view(v)]) for v in views])
    answers: Counter = Counter(k for v in views if (k := answer_key(v)) is not None)
    segments: Counter = Counter(k for v in views for k in v.get("repeat_keys", []))
    answer_counts = answer_table(answers.items())
    repeated = {t: n for t, n in segments.items() if n >= settings.repeated_answer_min_items}
    report = analyse(cells, answer_counts, repeated, settings)
    indexed = index_report(report)
    cache: dict[str, dict[str, bool]] = {}
    flags = {
        v["id"]: item_flags(v, indexed, answer_counts, repeated, settings, cache) for v in views
    }
    report["flagged"] = flag_counts(flags.values())
    return report, flags


def answer_table(counted: Iterable[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
    """``{cell: {answer: items}}`` from ``((cell, answer), items)``, answers of 2+ items."""
    out: dict[str, dict[str, int]] = {}
    for (cell, answer), n in sorted(counted):
        if n >= 2:
            out.setdefault(cell, {})[answer] = n
    return out


def flag_counts(all_flags: Iterable[list[AuditFlag]]) -> dict[str, Any]:
    """``{"items": flagged items, "by_code": {code: items}}``."""
    by_code: Counter = Counter()
    items = 0
    for flags in all_flags:
        codes = {f["code"] for f in flags if f["stage"] == STAGE}
        items += bool(codes)
        by_code.update(codes)
    return {"items": items, "by_code": {c: by_code.get(c, 0) for c in CODES}}
