"""``aftercare inbox``: the patients' replies that need staff, and marking them done."""

from __future__ import annotations

from typing import Any

import click

from aftercare.app import App
from aftercare.cli import views
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.ids import record_id
from aftercare.cli.output import print_json, print_table
from aftercare.db import transaction
from aftercare.store import replies
from aftercare.store.replies import WorklistRow
from aftercare.validation import parse_reason

COLUMNS = [
    ("id", "ID"),
    ("received_at", "RECEIVED (UTC)"),
    ("urgent", "URGENT"),
    ("who", "PATIENT"),
    ("kind", "KIND"),
    ("answers", "IN REPLY TO"),
    ("body", "MESSAGE"),
]


@click.group("inbox", invoke_without_command=True)
@click.option("--all", "include_handled", is_flag=True, help="Also replies already handled.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N replies.")
@json_option
@click.pass_context
def inbox_group(
    ctx: click.Context, include_handled: bool, limit: int | None, as_json: bool
) -> None:
    """Patient replies that need staff (questions, urgent replies): urgent first, then newest.

    STOP, START and HELP are handled automatically and are not listed (they are in the history
    of 'patients show' and in 'audit')."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None  # the root command always sets it
    with app.sessions() as session:
        rows = [_row(r) for r in replies.needing_staff(session, include_handled, limit)]
    if as_json:
        print_json(rows)
        return
    print_table([_table_row(row) for row in rows], COLUMNS)


@inbox_group.command("done")
@click.argument("reply_id", metavar="ID", callback=record_id("reply"))
@click.option("--note", help="What was done (called the patient ...), for the audit trail.")
@pass_app
def inbox_done(app: App, reply_id: int, note: str | None) -> None:
    """Mark a reply as dealt with: it leaves the inbox ('inbox --all' still lists it)."""
    why = None if note is None else parse_flag("--note", parse_reason, note)
    with transaction(app.sessions) as session:
        changed = replies.mark_handled(session, reply_id, app.actor, app.clock.now(), why)
    click.echo(f"reply {reply_id} {'marked as handled' if changed else 'was already handled'}")


def _row(found: WorklistRow) -> dict[str, Any]:
    reply, first_name, phone = found.reply, found.first_name, found.phone
    patient = {
        "id": reply.patient_id,
        "enrollment_id": reply.enrollment_id,
        "first_name": first_name,  # None: a number no patient has
        "phone": views.mask_phone(phone or reply.from_number),
    }
    in_reply_to = None
    if reply.in_reply_to is not None:
        in_reply_to = {
            "message_id": reply.in_reply_to,
            "step": found.step,
            "occurrence": found.occurrence,
        }
    return (
        {"id": reply.id, "patient": patient}
        | views.reply_view(reply)
        | {"in_reply_to": in_reply_to}
    )


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    patient, answered = row["patient"], row["in_reply_to"]
    who = (
        f"{patient['first_name']} (enrollment {patient['enrollment_id']})"
        if patient["first_name"]
        else f"unknown {patient['phone']}"
    )
    return row | {
        "urgent": row["urgent_reason"] or ("yes" if row["urgent"] else ""),
        "who": who,
        "answers": f"{answered['step']} #{answered['occurrence']}" if answered else None,
        # As written (SQL, markup and all): a terminal is not a browser. Only control
        # characters are shown as codes, so a reply cannot drive the terminal.
        "body": views.printable(row["body"]),
    }
