"""``aftercare fhir sync``: enroll from a FHIR R4 server's finished Encounters."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from aftercare import logs
from aftercare.app import App
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.output import print_json
from aftercare.cli.views import iso
from aftercare.intake.fhir_sync import SyncReport, sync
from aftercare.intake.setup import facility_timezone, fhir_client, procedure_map
from aftercare.schedules.timeexpr import parse_duration


@click.group("fhir")
def fhir_group() -> None:
    """FHIR R4 servers that allow searching finished Encounters."""


@fhir_group.command("sync")
@click.option("--base", required=True, metavar="URL", help="The server's FHIR base URL.")
@click.option("--every", metavar="SPAN", help="Keep syncing at this interval (5m, 1h).")
@click.option("--write-back", is_flag=True, help="Write Communications and pain Observations back.")
@json_option
@pass_app
def sync_command(app: App, base: str, every: str | None, write_back: bool, as_json: bool) -> None:
    """One pass (or one every SPAN): new finished Encounters become enrollments."""
    interval = parse_flag("--every", parse_duration, every) if every else None
    if not base.startswith(("http://", "https://")):
        raise click.UsageError("--base: must be an http:// or https:// URL")
    procedures = procedure_map(app)
    zone = facility_timezone(app)
    client = fhir_client(app, base)
    stopping = threading.Event()
    if interval is not None:
        logs.configure(app.settings.log_format)

        def stop(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    failed = False
    try:
        while True:
            report = sync(app, client, procedures, zone, writeback=write_back)
            failed = failed or bool(report.errors)
            _print(report, as_json)
            if interval is None or stopping.wait(interval.total_seconds()):
                break
    finally:
        client.close()
    if failed and interval is None:
        raise SystemExit(1)


def _print(report: SyncReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "seen": report.seen,
                "outcomes": report.outcomes,
                "errors": report.errors,
                "cursor": iso(report.cursor),
                "written_back": report.written_back,
            }
        )
        return
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "nothing new"
    click.echo(f"{report.seen} encounters: {counts}; written back: {report.written_back}")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
