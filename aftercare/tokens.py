"""Unsubscribe tokens: name a patient and a channel, signed so they cannot be forged or guessed.

``<patient id>.<channel>.<signature>`` where the signature is HMAC-SHA256 over the first two parts
with AFTERCARE_SECRET_KEY, truncated to 128 bits and base64url-encoded. No expiry: an
unsubscribe link in a six-week-old email must still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from aftercare.statuses import ChannelName

CHANNELS = (ChannelName.SMS, ChannelName.EMAIL)


@dataclass(frozen=True)
class Unsubscribe:
    patient_id: int
    channel: str


def make_token(secret: str, patient_id: int, channel: str) -> str:
    payload = f"{patient_id}.{channel}"
    return f"{payload}.{_sign(secret, payload)}"


def read_token(secret: str, token: str) -> Unsubscribe | None:
    """The token's contents, or None for anything not made by :func:`make_token` with ``secret``."""
    if not token.isascii():  # hmac.compare_digest takes ASCII text only; ours are base64url
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in CHANNELS or len(token) > 200:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _sign(secret, payload)):
        return None
    return Unsubscribe(int(parts[0]), parts[1])


def _sign(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"unsubscribe:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
