"""Who a patient is, as a key the database can hold unique.

A patient is their external id (MRN) when staff gave one, else their phone number (E.164) and
first name. Names are compared as people read them: case, accents written as one character or two,
and spacing do not make a new person ("ANA " is "Ana"). The key is a SHA-256 of that, so the
unique index, and any error that quotes it, holds no name or number.
"""

from __future__ import annotations

import hashlib
import unicodedata


def identity_key(external_id: str | None, phone: str, first_name: str) -> str:
    if external_id:
        plain = f"mrn\x1f{external_id.strip()}"
    else:
        plain = f"phone\x1f{phone}\x1f{normalise_name(first_name)}"
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def normalise_name(first_name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", first_name).casefold().split())


def active_key(patient_id: int, procedure: str) -> str:
    """The key an open (active or paused) enrollment holds: one per patient and procedure."""
    return f"{patient_id}:{procedure}"
