"""Beam counters through one function, so every stage names them the same way."""

from __future__ import annotations

from apache_beam.metrics import Metrics


def inc(namespace: str, name: str, value: int = 1) -> None:
    """Increment counter ``namespace/name`` (visible in the Dataflow UI and run logs)."""
    Metrics.counter(namespace, name).inc(value)
