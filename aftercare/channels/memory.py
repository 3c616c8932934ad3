"""An in-memory channel: keeps what it was given. For tests and benchmarks of everything around
the providers (claims, recording, the daemon); it can be told to fail like a provider would."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aftercare.channels.base import ChannelError, Outgoing, Receipt

Behaviour = Callable[[Outgoing], ChannelError | None]


class MemoryChannel:
    def __init__(self, name: str = "memory", behaviour: Behaviour | None = None) -> None:
        self.name = name
        self.sent: list[Outgoing] = []
        self.attempts = 0
        self.behaviour = behaviour  # returns an error to raise for a message, or None to accept
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        with self._lock:
            self.attempts += 1
        error = self.behaviour(message) if self.behaviour else None
        if error is not None:
            raise error
        with self._lock:
            self.sent.append(message)
        return Receipt(
            provider_id=f"mem-{message.message_id}-{len(self.sent)}", provider_status="accepted"
        )

    def find_sent(self, message: Outgoing) -> Receipt | None:
        with self._lock:
            for earlier in self.sent:
                if earlier.message_id == message.message_id:
                    return Receipt(
                        provider_id=f"mem-{earlier.message_id}", provider_status="accepted"
                    )
        return None

    def close(self) -> None:
        return None
