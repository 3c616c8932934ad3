"""``aftercare alerts``: the staff's worklist (the same rows the console shows), and
acknowledging and resolving one, as the ``--as`` actor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.cli.views import iso
from aftercare.db import transaction
from aftercare.store import alerts
from aftercare.store.alerts import AlertRow

COLUMNS = [
    ("id", "ID"),
    ("opened_at", "OPENED (UTC)"),
    ("state", "STATE"),
    ("kind", "KIND"),
    ("who", "PATIENT"),
    ("reason", "WHY"),
    ("escalations", "ESCALATED"),
]


@click.group("alerts", invoke_without_command=True)
@click.option("--all", "include_resolved", is_flag=True, help="Also resolved alerts.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N alerts.")
@json_option
@click.pass_context
def alerts_group(
    ctx: click.Context, include_resolved: bool, limit: int | None, as_json: bool
) -> None:
    """What staff must deal with: open urgent alerts first, then open, then acknowledged."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None  # the root command always sets it
    with app.sessions() as session:
        rows = [
            alert_view(r)
            for r in alerts.open_alerts(session, include_resolved=include_resolved, limit=limit)
        ]
    if as_json:
        print_json(rows)
        return
    print_table([_table_row(row) for row in rows], COLUMNS)


@alerts_group.command("ack")
@click.argument("alert_id", metavar="ID", type=int)
@click.option("--note", help="What is being done (optional).")
@pass_app
def alerts_ack(app: App, alert_id: int, note: str | None) -> None:
    """Someone is on it: on-call is no longer reminded."""
    with transaction(app.sessions) as session:
        changed = alerts.acknowledge(session, alert_id, app.actor, app.clock.now(), note)
    click.echo(f"alert {alert_id} {'acknowledged' if changed else 'was already acknowledged'}")


@alerts_group.command("resolve")
@click.argument("alert_id", metavar="ID", type=int)
@click.option("--note", required=True, help="How it was dealt with.")
@pass_app
def alerts_resolve(app: App, alert_id: int, note: str) -> None:
    """Dealt with: it leaves the worklist ('alerts --all' still lists it)."""
    with transaction(app.sessions) as session:
        changed = alerts.resolve(session, alert_id, app.actor, app.clock.now(), note)
    click.echo(f"alert {alert_id} {'resolved' if changed else 'was already resolved'}")


def alert_view(row: AlertRow) -> dict[str, Any]:
    """An alert as JSON: the shape the console's API can share."""

    def seconds(span: timedelta | None) -> int | None:
        return None if span is None else int(span.total_seconds())

    return {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "urgent": row.urgent,
        "reason": row.reason,
        "patient": {
            "id": row.patient_id,
            "enrollment_id": row.enrollment_id,
            "first_name": row.first_name,
        },
        "message_id": row.message_id,
        "reply_id": row.reply_id,
        "opened_at": iso(row.opened_at),
        "acknowledged_at": iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "acknowledge_note": row.acknowledge_note,
        "resolved_at": iso(row.resolved_at),
        "resolved_by": row.resolved_by,
        "resolve_note": row.resolve_note,
        "seconds_to_acknowledge": seconds(row.time_to_acknowledge),
        "seconds_to_resolve": seconds(row.time_to_resolve),
        "escalations": row.escalations,
        "next_escalation_at": iso(row.next_escalation_at),
    }


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    patient = row["patient"]
    who: str | None
    if patient["first_name"]:
        who = f"{patient['first_name']} (enrollment {patient['enrollment_id']})"
    else:
        who = "unknown number" if row["reply_id"] else None
    kind = f"{row['kind']} (urgent)" if row["urgent"] else row["kind"]
    return row | {"who": who, "kind": kind}
