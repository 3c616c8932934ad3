"""API keys: ``ak_<id>_<secret>``, shown once, stored as a SHA-256 digest.

The secret is 256 random bits, so a fast hash is enough: there is nothing to guess that a slow
password hash (argon2) would protect, and checking a key on every request stays cheap. The id
is the lookup key, so a check reads one row and compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ROLES = ("viewer", "nurse", "admin")
# What a role may do through the API: viewers read; nurses and admins also enroll and change.
WRITERS = frozenset({"nurse", "admin"})

_KEY = re.compile(r"^ak_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str  # the whole key, to show once
    digest: str


def generate() -> NewKey:
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    key = f"ak_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, key, digest(key))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The id part of a well-formed key, else None (nothing to look up)."""
    match = _KEY.match(presented)
    return match.group(1) if match else None


def matches(presented: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(presented), stored_digest)


def parse_name(raw: str) -> str:
    name = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", name):
        raise ValueError("must be 1-40 letters, digits, dots, dashes or underscores")
    return name


def parse_role(raw: str) -> str:
    role = raw.strip().lower()
    if role not in ROLES:
        raise ValueError(f"unknown role {raw!r}; choose from {', '.join(ROLES)}")
    return role
