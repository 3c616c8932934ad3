"""PROTOTYPE: the staff console blueprint; importing the page modules registers their routes."""

from aftercare.console import (  # noqa: F401
    enroll,
    helpers,
    imports,
    patient,
    roster,
    timelines,
    worklist,
)
from aftercare.console.blueprint import console_bp

__all__ = ["console_bp"]
