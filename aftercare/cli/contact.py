"""``aftercare patients edit``: change a patient's phone, email or language, audited."""

from __future__ import annotations

import click

from aftercare.app import App
from aftercare.cli.group import parse_flag, pass_app
from aftercare.cli.ids import enrollment_argument, resolve_enrollment
from aftercare.cli.patients import reason_flag
from aftercare.db import transaction
from aftercare.errors import AftercareError, InputError
from aftercare.store import lifecycle
from aftercare.store.patients import ContactChange, edit_contact
from aftercare.validation import parse_email, parse_phone


@click.command("edit")
@enrollment_argument
@click.option("--phone", metavar="E164", help="The patient's new mobile number.")
@click.option("--email", metavar="ADDRESS", help="The patient's new email address.")
@click.option("--language", metavar="LANG", help="The language of their messages, e.g. es.")
@click.option("--reason", help="Why, for the audit trail.")
@pass_app
def patients_edit(
    app: App,
    enrollment_id: int | None,
    external_id: str | None,
    phone: str | None,
    email: str | None,
    language: str | None,
    reason: str | None,
) -> None:
    """Change the contact details of the patient of enrollment ID (every enrollment of theirs:
    messages not yet sent go to the new number or address, in the new language)."""
    change = ContactChange(
        phone=parse_flag("--phone", parse_phone, phone) if phone is not None else None,
        email=parse_flag("--email", parse_email, email) if email is not None else None,
        language=language.strip().lower() if language is not None else None,
    )
    if change == ContactChange():
        raise AftercareError("nothing to change: give --phone, --email or --language")
    why = reason_flag(reason)
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    with transaction(app.sessions) as session:
        patient_id = lifecycle.get_enrollment(session, enrollment_id).patient_id
        try:
            changed = edit_contact(
                session, patient_id, change, app.catalog, app.actor, app.clock.now(), why
            )
        except InputError as exc:
            raise InputError(f"--{exc.field}", exc.problem) from None
    if changed:
        click.echo(f"patient of enrollment {enrollment_id}: changed {', '.join(changed)}")
    else:
        click.echo(f"patient of enrollment {enrollment_id}: nothing changed (same values)")
