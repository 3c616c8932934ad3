"""The console channel: prints what would be sent. For the demo and dry runs; no credentials."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import click

from aftercare.channels.base import Outgoing, Receipt
from aftercare.planner import zone


class ConsoleChannel:
    """Prints each message as the patient would see it, at the patient-local send time.

    ``now`` gives the (possibly simulated) send time; ``label`` may name who it is for (the
    demo shows first names; the channel itself knows no patients).
    """

    name = "console"

    def __init__(
        self,
        now: Callable[[], datetime],
        label: Callable[[Outgoing], str] | None = None,
        echo: Callable[[str], None] = click.echo,
    ) -> None:
        self._now = now
        self._label = label
        self._echo = echo
        self._lock = threading.Lock()  # one message's lines never interleave with another's

    def send(self, message: Outgoing) -> Receipt:
        at = self._now().astimezone(zone(message.timezone))
        who = f"  {self._label(message)}" if self._label else ""
        header = f"{at:%a %Y-%m-%d %H:%M %Z}{who}  {message.channel} #{message.message_id}"
        body = message.text if message.channel == "sms" else f"Subject: {message.subject}"
        with self._lock:
            self._echo(f"{header}\n    {body}")
        return Receipt(provider_id=f"console-{message.message_id}", provider_status="printed")

    def find_sent(self, message: Outgoing) -> Receipt | None:
        return None

    def close(self) -> None:
        return None
