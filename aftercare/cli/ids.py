"""Ids on the command line: a number no record can have is "not found", never a traceback; and
a patient can be named by the clinic's MRN (``--external-id``) instead of an enrollment id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from aftercare.app import App
from aftercare.errors import InputError, NotFoundError
from aftercare.store.enrollments import enrollments_of_external_id

# Ids are INTEGER columns: PostgreSQL cannot compare a larger number with one (it fails the
# query), and SQLite cannot even bind one over 2^63. None of ours is larger than this.
MAX_ID = 2**31 - 1


def record_id(noun: str, field: str = "id") -> Callable[..., int | None]:
    """A click callback: a positive whole number; one that no record can have is
    "no <noun> N" (exit 1), text that is not a number a usage error."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise click.BadParameter(f"{value!r} is not an id (a whole number)", ctx, param)
        number = int(text)
        if not 1 <= number <= MAX_ID:
            raise NotFoundError(f"{field}: no {noun} {number}")
        return number

    return convert


def enrollment_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """``ID`` (an enrollment) or ``--external-id MRN`` (the patient's only enrollment)."""
    command = click.option(
        "--external-id", metavar="MRN", help="The patient's MRN, instead of the ID."
    )(command)
    return click.argument(
        "enrollment_id", metavar="[ID]", required=False, callback=record_id("enrollment")
    )(command)


def resolve_enrollment(app: App, enrollment_id: int | None, external_id: str | None) -> int:
    """The enrollment named by an id or by the patient's MRN."""
    if enrollment_id is not None and external_id is not None:
        raise InputError("--external-id", "give an enrollment id or --external-id, not both")
    if enrollment_id is not None:
        return enrollment_id
    if external_id is None:
        raise InputError("ID", "give an enrollment id or --external-id")
    with app.sessions() as session:
        found = enrollments_of_external_id(session, external_id.strip())
    if not found:
        raise InputError("--external-id", f"no patient with external id {external_id!r}")
    if len(found) > 1:
        ids = ", ".join(str(i) for i in found)
        raise InputError(
            "--external-id", f"{external_id!r} has {len(found)} enrollments ({ids}); give the ID"
        )
    return found[0]
