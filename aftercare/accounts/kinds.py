"""The event kinds staff accounts and the console write to the event log."""

from __future__ import annotations

from aftercare.statuses import EventKind

# The log's column holds EventKind values only; the account events are among them (listed in
# aftercare.statuses) and keep this name where the accounts code writes them.
AccountEvent = EventKind
