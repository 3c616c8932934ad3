"""Prometheus text: what the database says of every message, shared by ``aftercare serve`` and
the daemon's own endpoint (``aftercare run --metrics-port``).

Written by prometheus-client's own exposition: values keep every digit (a Unix timestamp printed
with six significant digits was off by up to 5,000 s, and large counts were rounded), and labels
are escaped as the format says.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from aftercare.store import reports, workers

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the Prometheus text exposition format
Sample = tuple[dict[str, str], float]


def render_metrics(sessions: sessionmaker[Session], now: datetime) -> str:
    """Prometheus text format, read from the database at scrape time (so every web server and
    daemon sharing a database reports the same numbers)."""
    families: list[Metric] = []
    with sessions() as session:
        by_status = reports.messages_by_status(session)
        due = reports.backlog(session, now)
        errors = reports.provider_errors(session)
        last_tick = workers.last_tick(session)
        replies = reports.replies_by_kind(session)
    metric(
        families,
        "aftercare_messages",
        "gauge",
        "Messages by status and channel.",
        [({"status": s, "channel": c}, n) for s, c, n in by_status],
    )
    metric(
        families,
        "aftercare_backlog_messages",
        "gauge",
        "Pending messages already due.",
        [({}, due.due)],
    )
    lag = due.lag_seconds(now)
    metric(
        families,
        "aftercare_dispatch_lag_seconds",
        "gauge",
        "How long the oldest due message has been waiting.",
        [({}, lag)],
    )
    metric(
        families,
        "aftercare_provider_errors",
        "gauge",
        "Messages whose last attempt failed, by code.",
        [({"code": str(code)}, n) for code, n in errors],
    )
    tick = last_tick.timestamp() if last_tick else 0.0
    metric(
        families,
        "aftercare_last_tick_timestamp_seconds",
        "gauge",
        "When a dispatcher last ticked (Unix time).",
        [({}, tick)],
    )
    metric(
        families,
        "aftercare_replies",
        "gauge",
        "Patient replies by kind.",
        [({"kind": k, "urgent": str(bool(u)).lower()}, n) for k, u, n in replies],
    )
    return exposition(families)


def metric(
    families: list[Metric],
    name: str,
    kind: str,
    help_text: str,
    samples: list[Sample],
) -> None:
    """Add one metric family (``kind`` is "gauge" or "counter") with its samples."""
    label_names = sorted({key for labels, _ in samples for key in labels})
    family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = family_type(name, help_text, labels=label_names)
    for labels, value in samples:
        family.add_metric([labels[key] for key in label_names], float(value))
    families.append(family)


def exposition(families: list[Metric]) -> str:
    """The families in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode()


class _Families(Collector):
    """Families already read from the database, handed to the registry as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
