"""What each role may do: every role may do everything the roles before it may."""

from __future__ import annotations

from aftercare.errors import InputError
from aftercare.statuses import StaffRole

RANK = {StaffRole.VIEWER: 0, StaffRole.NURSE: 1, StaffRole.ADMIN: 2}


def may(role: str, needed: StaffRole) -> bool:
    try:
        return RANK[StaffRole(role)] >= RANK[needed]
    except ValueError:  # a role this version does not know may do nothing
        return False


def parse_role(raw: str) -> StaffRole:
    try:
        return StaffRole(raw.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in StaffRole)
        raise InputError("role", f"must be one of {choices}, got {raw!r}") from None
