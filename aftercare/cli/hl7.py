"""``aftercare hl7``: the HL7 v2 ADT listener (MLLP) and what it has received."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from aftercare import logs
from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.intake.mllp import Listener
from aftercare.intake.setup import hl7_service
from aftercare.store import intake as store


@click.group("hl7")
def hl7_group() -> None:
    """HL7 v2 ADT feeds from the hospital's interface engine."""


@hl7_group.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2575,
    show_default=True,
    help="0: any free port (printed).",
)
@pass_app
def listen(app: App, host: str, port: int) -> None:
    """Receive ADT messages over MLLP: A03 enrolls, A13/A11 cancel, A08 updates, A40 merges."""
    logs.configure(app.settings.log_format)
    service = hl7_service(app)  # a bad map or a missing zone stops it here, before listening
    app.sessions  # noqa: B018 - migrate (SQLite) or refuse (unmigrated PostgreSQL) first
    listener = Listener(host, port, service)
    click.echo(f"listening for HL7 v2 (MLLP) on {host}:{listener.address[1]}", err=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it runs off the main thread.
        threading.Thread(target=listener.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listener.serve_forever()
    counters = listener.counters
    click.echo(
        f"stopped: {counters.messages} messages, {counters.framing_errors} framing errors",
        err=True,
    )


@hl7_group.command("stats")
@json_option
@pass_app
def stats(app: App, as_json: bool) -> None:
    """Messages received, by outcome (enrolled, ignored, error, ...)."""
    with app.sessions() as session:
        counts = store.hl7_counts(session)
    rows = [{"outcome": k, "messages": v} for k, v in sorted(counts.items())]
    if as_json:
        print_json(counts)
    else:
        print_table(rows, [("outcome", "OUTCOME"), ("messages", "MESSAGES")])
