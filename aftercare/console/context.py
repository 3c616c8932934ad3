"""What a console request knows: the aftercare App it serves and the signed-in account."""

from __future__ import annotations

from typing import cast

from flask import current_app, g

from aftercare.accounts.service import StaffAccount
from aftercare.app import App

EXTENSION = "aftercare"


def aftercare_app() -> App:
    return cast(App, current_app.extensions[EXTENSION])


def signed_in() -> StaffAccount:
    """The account of this request; every console page but sign-in has one."""
    return cast(StaffAccount, g.staff)


def actor() -> str:
    """The event log's actor for what this request does: the account's email and id."""
    return signed_in().actor
