"""The ``aftercare`` command: a thin shell over the modules that do the work.

Every command is added here, by name, to the group defined in :mod:`aftercare.cli.group`; each
module of this package holds one command or one group of commands.
"""

from __future__ import annotations

from aftercare.cli import (
    alerts,
    apikey,
    audit,
    contact,
    db,
    demo,
    doctor,
    fhir,
    hl7,
    inbox,
    patients,
    purge,
    run,
    schedules,
    serve,
    staff,
    stats,
)
from aftercare.cli.group import cli, fail
from aftercare.errors import AftercareError

__all__ = ["cli", "main"]

for command in (
    alerts.alerts_group,
    apikey.apikey_group,
    audit.audit,
    db.db_group,
    demo.demo,
    doctor.doctor,
    fhir.fhir_group,
    hl7.hl7_group,
    inbox.inbox_group,
    patients.enroll,
    patients.import_command,
    patients.patients_group,
    patients.cancel,
    patients.pause,
    patients.resume,
    patients.reschedule,
    purge.purge_command,
    run.run,
    schedules.schedules_group,
    schedules.preview,
    serve.serve,
    staff.staff_group,
    stats.stats_command,
):
    cli.add_command(command)
patients.patients_group.add_command(contact.patients_edit)


def main() -> None:
    try:
        cli(prog_name="aftercare")
    except AftercareError as exc:  # raised before a command runs (settings)
        fail(str(exc))
