"""The waitress server under ``aftercare serve``: its own limits, so that no request reaches the
app before they are checked."""

from __future__ import annotations

from typing import Any

from aftercare.web.http import MAX_BODY


def server_options(threads: int) -> dict[str, Any]:
    """waitress settings for ``threads`` worker threads."""
    return {
        "threads": threads,
        "ident": "aftercare",
        "clear_untrusted_proxy_headers": True,
        # waitress's own default is 1 GiB, spooled to disk before the app can answer 413: a
        # larger declared body is refused from its headers, before a byte of it is read.
        "max_request_body_size": MAX_BODY,
        "max_request_header_size": 64 * 1024,
        # Idle sockets cost a file descriptor each, not a thread: room for many (the default 100
        # let 120 idle sockets starve /healthz), closed after 30 s idle instead of 120 s.
        "connection_limit": 1000,
        "channel_timeout": 30,
        "cleanup_interval": 10,
        # select() cannot watch descriptors above 1024; poll() can.
        "asyncore_use_poll": True,
    }
