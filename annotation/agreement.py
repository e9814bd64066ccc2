"""Inter-annotator agreement: Krippendorff's alpha and percent agreement, with bootstrap CIs.

Alpha comes from the maintained ``krippendorff`` package (Castro, PyPI ``krippendorff``),
computed from a units x values count matrix: ``ordinal`` for rating questions over the
question's full scale (so the metric knows the distance between 0 and 6 even when nobody
answered 0), ``nominal`` for labels. A multi-label answer is one nominal value (the set of
ticked labels). Percent agreement is the share of agreeing annotator pairs within a unit,
averaged over units with at least two answers. Alpha is given only where at least
``MIN_PAIRABLE_UNITS`` (2) units were each judged by two or more annotators: one shared item
says nothing about agreement (Krippendorff's alpha of a single disagreeing pair is exactly 0),
so below that it is None (n/a). Confidence intervals resample units with
replacement (percentile bootstrap, fixed seed, so the output is reproducible).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import krippendorff
import numpy as np

from annotation.round_args import DEFAULT_BOOTSTRAP

MIN_PAIRABLE_UNITS = 2


def count_matrix(
    units: Sequence[Sequence[Hashable]], domain: Sequence[Hashable] | None = None
) -> tuple[np.ndarray, list]:
    """Units x values matrix of how many annotators gave each value to each unit.

    Args:
        units: per unit, the values its annotators gave (missing answers left out).
        domain: the ordered value domain (ratings: the scale); default: the values seen,
            in first-seen order.

    Returns:
        ``(counts, domain)``.
    """
    domain = list(domain) if domain is not None else []
    index = {v: i for i, v in enumerate(domain)}
    for values in units:
        for v in values:
            if v not in index:
                index[v] = len(domain)
                domain.append(v)
    counts = np.zeros((len(units), max(len(domain), 1)), dtype=float)
    for row, values in enumerate(units):
        for v in values:
            counts[row, index[v]] += 1
    return counts, domain


def alpha_from_counts(counts: np.ndarray, level: str, domain: Sequence[Any]) -> float | None:
    """Krippendorff's alpha from a count matrix; None when it is undefined.

    Undefined: fewer than two pairable values, or no variation at all (expected
    disagreement zero).
    """
    pairable = counts[counts.sum(axis=1) >= 2]
    if pairable.sum() < 2 or np.count_nonzero(pairable.sum(axis=0)) < 2:
        return None
    value_domain = list(domain) if level != "nominal" else list(range(len(domain)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            value = float(
                krippendorff.alpha(
                    value_counts=pairable, value_domain=value_domain, level_of_measurement=level
                )
            )
        except (ValueError, ZeroDivisionError):
            return None
    return None if math.isnan(value) else value


def percent_from_counts(counts: np.ndarray) -> float | None:
    """Mean over units (with >= 2 answers) of the share of agreeing annotator pairs."""
    n = counts.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return None
    c, n = counts[keep], n[keep]
    return float(np.mean((c * (c - 1)).sum(axis=1) / (n * (n - 1))))


def _ci(values: list[float]) -> list[float] | None:
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def agreement(
    units: Sequence[Sequence[Hashable]],
    level: str,
    domain: Sequence[Hashable] | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """Alpha and percent agreement of one question, with 95% bootstrap intervals.

    Args:
        units: per record, the values its annotators submitted.
        level: ``nominal`` or ``ordinal`` (``interval``/``ratio`` also work).
        domain: ordered value domain (required for ordinal to use the full scale).
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.

    Returns:
        ``{level, alpha, alpha_ci95, percent_agreement, percent_agreement_ci95, units,
        pairable_units, values}``; numbers rounded to 4 decimals, None where undefined.
    """
    counts, domain = count_matrix(units, domain)
    pairable = counts[counts.sum(axis=1) >= 2]
    alpha = (
        alpha_from_counts(pairable, level, domain) if len(pairable) >= MIN_PAIRABLE_UNITS else None
    )
    percent = percent_from_counts(pairable)
    alpha_ci = percent_ci = None
    if n_boot and len(pairable) >= 2:
        rng = np.random.default_rng(seed)
        alphas, percents = [], []
        for _ in range(n_boot):
            sample = pairable[rng.integers(0, len(pairable), len(pairable))]
            alphas.append(alpha_from_counts(sample, level, domain))
            percents.append(percent_from_counts(sample))
        alpha_ci, percent_ci = _ci(alphas), _ci(percents)
    return {
        "level": level,
        "alpha": None if alpha is None else round(alpha, 4),
        "alpha_ci95": alpha_ci,
        "percent_agreement": None if percent is None else round(percent, 4),
        "percent_agreement_ci95": percent_ci,
        "units": len(units),
        "pairable_units": len(pairable),
        "values": int(counts.sum()),
    }
