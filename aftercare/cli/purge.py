"""``aftercare purge``: data retention (:mod:`aftercare.store.purge` says what goes, what stays)."""

from __future__ import annotations

from datetime import timedelta

import click

from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json
from aftercare.cli.views import iso
from aftercare.errors import InputError
from aftercare.schedules.timeexpr import format_duration, parse_duration
from aftercare.store.purge import Plan, purge

# Shorter than this and a patient may still be replying, or staff still looking at the case.
MIN_AGE = timedelta(days=30)


@click.command("purge")
@click.option(
    "--older-than",
    required=True,
    metavar="SPAN",
    help="Purge patients whose last activity is older than this (365d, 52w).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be purged; write nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Patients per transaction.",
)
@click.option("--force", is_flag=True, help=f"Allow --older-than under {MIN_AGE.days}d.")
@json_option
@pass_app
def purge_command(
    app: App, older_than: str, dry_run: bool, batch_size: int, force: bool, as_json: bool
) -> None:
    """Remove names, contact details and free text of patients whose care ended long ago."""
    span = _older_than(older_than, force)
    now = app.clock.now()
    plan = Plan(now - span, batch_size, dry_run, app.actor, now)
    counts = purge(app.sessions, plan)
    result = {
        "dry_run": dry_run,
        "older_than": format_duration(span),
        "cutoff": iso(plan.cutoff),
        **{key: counts[key] for key in ("patients", "enrollments", "replies", "events", "batches")},
    }
    if as_json:
        print_json(result)
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {result['patients']} patient(s), {result['enrollments']} enrollment(s), "
        f"{result['replies']} reply(ies), {result['events']} event reason(s) "
        f"(last activity before {result['cutoff']}; {result['batches']} batch(es))"
    )
    if dry_run:
        click.echo("dry run: nothing was written")


def _older_than(raw: str, force: bool) -> timedelta:
    try:
        span = parse_duration(raw)
    except ValueError as exc:
        raise InputError("--older-than", str(exc)) from None
    if span < MIN_AGE and not force:
        raise InputError(
            "--older-than",
            f"{raw.strip()} is under {MIN_AGE.days} days; recent patients may still need "
            "their records (add --force to purge anyway)",
        )
    return span
