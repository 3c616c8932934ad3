"""``aftercare stats``: the metrics of ``/metrics`` at a glance, in a terminal or as JSON."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import click

from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.cli.views import iso
from aftercare.models import Worker
from aftercare.statuses import MessageStatus
from aftercare.store import reports
from aftercare.web.ops import TICK_STALE_AFTER

_STATUS_ORDER = {status.value: index for index, status in enumerate(MessageStatus)}


@click.command("stats")
@json_option
@pass_app
def stats_command(app: App, as_json: bool) -> None:
    """Messages by status and channel, the due backlog, provider errors, replies, dispatchers."""
    now = app.clock.now()
    with app.sessions() as session:
        snapshot = reports.snapshot(session, now)
    data = to_json(snapshot, now)
    if as_json:
        print_json(data)
    else:
        _print(data)


def to_json(snapshot: reports.Snapshot, now: datetime) -> dict[str, Any]:
    messages = sorted(snapshot.messages, key=lambda m: (_STATUS_ORDER.get(m[0], 99), m[0], m[1]))
    return {
        "at": iso(now),
        "messages": [{"status": s, "channel": c, "count": n} for s, c, n in messages],
        "backlog": {
            "due": snapshot.backlog.due,
            "oldest_due_at": iso(snapshot.backlog.oldest_due_at),
            "oldest_wait_seconds": round(snapshot.backlog.lag_seconds(now)),
        },
        "provider_errors": [{"code": code, "count": n} for code, n in snapshot.errors],
        "replies": {
            "total": sum(n for _, _, n in snapshot.replies),
            "by_kind": [
                {"kind": k, "urgent": u, "count": n} for k, u, n in sorted(snapshot.replies)
            ],
            "urgent_unhandled": snapshot.urgent_unhandled,
        },
        "dispatchers": [_worker(w, now) for w in snapshot.workers],
    }


def _worker(worker: Worker, now: datetime) -> dict[str, Any]:
    age = now - worker.last_tick_at
    if worker.stopped_at is not None:
        state = "stopped"
    elif age > TICK_STALE_AFTER:
        state = "stale"  # not stopped cleanly, and silent: crashed, killed or hung
    else:
        state = "running"
    return {
        "id": worker.id,
        "started_at": iso(worker.started_at),
        "last_tick_at": iso(worker.last_tick_at),
        "last_tick_age_seconds": round(age.total_seconds()),
        "stopped": worker.stopped_at is not None,
        "stopped_at": iso(worker.stopped_at),
        "state": state,
    }


# --- the terminal view --------------------------------------------------------------------------


def _print(data: dict[str, Any]) -> None:
    click.echo(f"at {data['at']}\n\nmessages:")
    _print_messages(data["messages"])
    backlog = data["backlog"]
    waited = f"; the oldest has waited {age(backlog['oldest_wait_seconds'])}"
    click.echo(f"\nbacklog: {backlog['due']} due and unsent{waited if backlog['due'] else ''}")
    click.echo("\nprovider errors (messages whose last attempt failed):")
    print_table(data["provider_errors"], [("code", "CODE"), ("count", "MESSAGES")])
    click.echo(f"\n{_replies_line(data['replies'])}\n\ndispatchers:")
    rows = [w | {"tick": f"{age(w['last_tick_age_seconds'])} ago"} for w in data["dispatchers"]]
    columns = [("id", "ID"), ("started_at", "STARTED (UTC)"), ("tick", "LAST TICK")]
    print_table(rows, [*columns, ("state", "STATE")])


def _replies_line(replies: dict[str, Any]) -> str:
    kinds: Counter[str] = Counter()
    for row in replies["by_kind"]:
        kinds[row["kind"]] += row["count"]
    by_kind = f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})" if kinds else ""
    return (
        f"replies: {replies['total']}{by_kind}; urgent and unhandled: {replies['urgent_unhandled']}"
    )


def _print_messages(messages: list[dict[str, Any]]) -> None:
    """A status x channel table with totals."""
    channels = sorted({m["channel"] for m in messages})
    counts = {(m["status"], m["channel"]): m["count"] for m in messages}
    statuses = list(dict.fromkeys(m["status"] for m in messages))
    rows: list[dict[str, Any]] = [
        {"status": s} | {c: counts.get((s, c), 0) for c in channels} for s in statuses
    ]
    if rows:
        rows.append({"status": "total"} | {c: sum(r[c] for r in rows) for c in channels})
    for row in rows:
        row["total"] = sum(row[c] for c in channels)
    columns = [("status", "STATUS"), *((c, c.upper()) for c in channels), ("total", "TOTAL")]
    print_table(rows, columns)


def age(seconds: float) -> str:
    """``45s``, ``4m 12s``, ``3h 0m``, ``2d 4h``: the largest unit and the one below it."""
    whole = max(int(seconds), 0)
    parts = [
        (whole // 86400, "d"),
        (whole // 3600 % 24, "h"),
        (whole // 60 % 60, "m"),
        (whole % 60, "s"),
    ]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{count}{unit}" for count, unit in parts[:2])
