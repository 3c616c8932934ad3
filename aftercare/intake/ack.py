"""HL7 v2 acknowledgements (original mode): MSA-1 AA, AE or AR, the reason in MSA-3 and ERR.

The reason names a field and a problem, never a value from the message, so an ACK that an
interface engine logs carries no patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aftercare.intake.hl7v2 import Header

ACCEPT = "AA"
ERROR = "AE"
REJECT = "AR"

_ESCAPES = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"})


@dataclass(frozen=True)
class Problem:
    """Why a message was not accepted: where (``PID-13``, or none) and an HL7 table 0357 code."""

    text: str
    code: str
    location: str | None = None


def build(
    code: str, header: Header | None, ack_id: str, now: datetime, problem: Problem | None = None
) -> str:
    """The ACK message, segments separated by carriage returns."""
    sender = header or Header("", "", "", "aftercare", "", "", "", "2.5")
    msh = "|".join(
        (
            "MSH",
            "^~\\&",
            _esc(sender.receiving_application or "aftercare"),
            _esc(sender.receiving_facility),
            _esc(sender.sending_application),
            _esc(sender.sending_facility),
            now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
            "",
            f"ACK^{_esc(sender.event)}^ACK",
            _esc(ack_id),
            _esc(sender.processing_id),
            _esc(sender.version),
        )
    )
    msa = f"MSA|{code}|{_esc(sender.control_id)}"
    segments = [msh, msa + (f"|{_esc(problem.text)}" if problem else "")]
    if problem:
        segments.append(
            f"ERR||{_location(problem.location)}|{problem.code}^{_esc(problem.text)}^HL70357|E"
        )
    return "\r".join(segments) + "\r"


def _esc(value: str) -> str:
    return value.translate(_ESCAPES).replace("\r", " ").replace("\n", " ")


def _location(location: str | None) -> str:
    """ERR-2 (ELD): ``PID-13`` as segment^sequence^field."""
    if not location or "-" not in location:
        return ""
    segment, _, field = location.partition("-")
    return f"{segment}^1^{field}" if field.isdigit() else ""
