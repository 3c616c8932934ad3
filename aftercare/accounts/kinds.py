"""The event kinds staff accounts and the console write to the event log."""

from __future__ import annotations

from enum import StrEnum


class AccountEvent(StrEnum):
    STAFF_ADDED = "staff_added"
    STAFF_DISABLED = "staff_disabled"
    STAFF_ENABLED = "staff_enabled"
    ROLE_CHANGED = "role_changed"
    PASSWORD_RESET = "password_reset"
    TWO_FACTOR_ON = "two_factor_on"
    TWO_FACTOR_OFF = "two_factor_off"
    TWO_FACTOR_REQUIRED = "two_factor_required"
    SIGNED_IN = "signed_in"
    SIGNIN_FAILED = "signin_failed"
    SIGNED_OUT = "signed_out"
    FORBIDDEN = "forbidden"  # a signed-in account tried what its role may not do
    VIEWED = "viewed"  # a patient's record (or a list of them) was looked at
