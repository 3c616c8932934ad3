"""HL7 v2 ADT messages (ER7, the ``|^~\\&`` text) into neutral intake requests.

Parsing is python-hl7's (``hl7``): it reads any 2.x version leniently (interface engines send 2.3
to 2.8, often with Z-segments) and undoes the escapes (``\\F\\``, ``\\T\\``), and it is light.
hl7apy's strict, version-aware model is not needed for the fifteen fields read here, and it
refuses structures real feeds send (segments out of the version's order, Z-segments).

Fields read (HL7 v2.5 numbering): MSH-3/4 sender, MSH-9 type, MSH-10 control id, MSH-12 version;
PID-3 MRN (the repetition whose type is MR, else the first), PID-5.2 given name, PID-13/14 phones
(a mobile one first) and email, PID-15 language; PV1-19 visit number, PV1-45 discharge time; PR1-3
procedure code; MRG-1 the prior MRN (A40).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import hl7

from aftercare.errors import InputError
from aftercare.intake.mapping import ProcedureMap, coding_system
from aftercare.intake.requests import (
    CancelVisit,
    Contact,
    Discharge,
    MergePatients,
    Parsed,
    ScheduledAdmission,
    UpdateContact,
)

# HL7 table 0357 (message error condition codes) used in ERR-3.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
APPLICATION_INTERNAL_ERROR = "207"

EVENTS = ("A01", "A03", "A05", "A08", "A11", "A13", "A40")
# Where each field of an enrollment comes from, so a bad value's error names it.
FIELDS = {
    "external_id": "PID-3",
    "first_name": "PID-5",
    "phone": "PID-13",
    "email": "PID-13",
    "language": "PID-15",
    "discharged_at": "PV1-45",
    "procedure": "PR1-3",
    "visit": "PV1-19",
}
# ISO 639-2 (three letters, HL7 table 0296 in many feeds) to the ISO 639-1 codes timelines use.
_LANGUAGES = {
    "eng": "en",
    "spa": "es",
    "fra": "fr",
    "fre": "fr",
    "por": "pt",
    "vie": "vi",
    "zho": "zh",
    "chi": "zh",
    "kor": "ko",
    "rus": "ru",
    "ara": "ar",
    "hat": "ht",
    "tgl": "tl",
    "deu": "de",
    "ger": "de",
    "pol": "pl",
    "ita": "it",
    "english": "en",
    "spanish": "es",
}
_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


@dataclass(frozen=True)
class Header:
    control_id: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # "ADT"
    event: str  # "A03"
    version: str
    processing_id: str = "P"

    @property
    def sender(self) -> str:
        """Who sent it, for idempotency keys and the audit log's actor."""
        return f"{self.sending_application}^{self.sending_facility}"[:64]


class Rejected(Exception):
    """The message cannot be processed at all (AR): not HL7, no control id, unsupported type."""

    def __init__(self, problem: str, code: str, header: Header | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.code = code
        self.header = header


class FieldError(InputError):
    """One field of an otherwise readable message is wrong (AE), e.g. ``PID-13: is required``."""

    def __init__(self, location: str, problem: str, code: str = DATA_TYPE_ERROR) -> None:
        super().__init__(location, problem)
        self.code = code


class Er7:
    """A parsed message with its segments indexed by name. python-hl7's own ``message[key]``
    scans every segment on each lookup; a discharge needs some thirty of them."""

    def __init__(self, message: hl7.Message) -> None:
        self.segments: dict[str, list[hl7.Segment]] = {}
        for segment in message:
            self.segments.setdefault(str(segment[0]), []).append(segment)

    def get(self, key: str, nth: int = 0) -> str:
        """One unescaped value (``PID.F13.R1.C3``), or "" when it is absent."""
        name, field, rep, component = _key(key)
        found = self.segments.get(name)
        if not found or nth >= len(found):
            return ""
        try:
            return str(found[nth].extract_field(1, field, rep, component))
        except IndexError:
            return ""

    def has(self, key: str) -> bool:
        """Whether the repetition exists (``PID.F13.R2``)."""
        name, field, rep, _ = _key(key)
        found = self.segments.get(name)
        if not found:
            return False
        try:
            found[0].extract_field(1, field, rep, 1)
        except IndexError:
            return False
        return True

    def count(self, name: str) -> int:
        return len(self.segments.get(name, ()))


@lru_cache(maxsize=256)
def _key(key: str) -> tuple[str, int, int, int]:
    name, *parts = key.split(".")
    numbers = {part[0]: int(part[1:]) for part in parts}
    return name, numbers.get("F", 1), numbers.get("R", 1), numbers.get("C", 1)


def read_message(text: str) -> tuple[Header, Er7]:
    """The header and the parsed message; raises Rejected when either is unusable."""
    body = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\x00 ")
    if not body.startswith("MSH") or len(body) < 8:
        raise Rejected("not an HL7 v2 message (no MSH segment)", APPLICATION_INTERNAL_ERROR)
    try:
        message = Er7(hl7.parse(body))
    except Exception:  # python-hl7 raises assorted errors on malformed input; all mean the same
        raise Rejected("the message cannot be parsed", APPLICATION_INTERNAL_ERROR) from None
    header = Header(
        control_id=_value(message, "MSH.F10").strip(),
        sending_application=_value(message, "MSH.F3"),
        sending_facility=_value(message, "MSH.F4"),
        receiving_application=_value(message, "MSH.F5"),
        receiving_facility=_value(message, "MSH.F6"),
        message_type=_value(message, "MSH.F9.R1.C1").upper(),
        event=_value(message, "MSH.F9.R1.C2").upper(),
        version=_value(message, "MSH.F12") or "2.5",
        processing_id=_value(message, "MSH.F11") or "P",
    )
    if not header.control_id:
        raise Rejected("MSH-10: the message control id is required", REQUIRED_FIELD_MISSING)
    if len(header.control_id) > 199:
        raise Rejected("MSH-10: is longer than 199 characters", DATA_TYPE_ERROR, header)
    if header.message_type != "ADT":
        raise Rejected("MSH-9: only ADT messages are accepted", UNSUPPORTED_MESSAGE_TYPE, header)
    if header.event not in EVENTS:
        raise Rejected(
            f"MSH-9: event {header.event or '(none)'} is not handled ({', '.join(EVENTS)} are)",
            UNSUPPORTED_EVENT_CODE,
            header,
        )
    return header, message


def to_request(header: Header, message: Er7, procedures: ProcedureMap, zone: ZoneInfo) -> Parsed:
    """The neutral request of an ADT message; raises FieldError naming the field."""
    mrn = _mrn(message)
    if header.event == "A03":
        code, timeline = _procedure(message, procedures)
        discharge = Discharge(
            external_id=mrn,
            visit=_value(message, "PV1.F19.R1.C1") or None,
            contact=_contact(message),
            discharged_at=_discharge_time(message, zone),
            procedure=timeline,
            procedure_code=code,
        )
        return Parsed(discharge, FIELDS)
    if header.event in ("A01", "A05"):
        code, timeline = _procedure(message, procedures)
        visit = _value(message, "PV1.F19.R1.C1") or None
        return Parsed(ScheduledAdmission(mrn, visit, timeline, code))
    if header.event in ("A11", "A13"):
        what = "discharge" if header.event == "A13" else "admission"
        visit = _value(message, "PV1.F19.R1.C1") or None
        return Parsed(CancelVisit(mrn, visit, what), FIELDS)
    if header.event == "A08":
        return Parsed(UpdateContact(mrn, _contact(message)), FIELDS)
    prior = _value(message, "MRG.F1.R1.C1").strip()
    if not prior:
        raise FieldError(
            "MRG-1", "the prior patient identifier is required", REQUIRED_FIELD_MISSING
        )
    return Parsed(MergePatients(mrn, prior))


def _value(message: Er7, key: str) -> str:
    return message.get(key)


def _repetitions(message: Er7, field: str, components: tuple[int, ...]) -> Iterator[list[str]]:
    """Each repetition of ``field`` (``PID.F13``) as the listed components."""
    for rep in range(1, 21):
        if not message.has(f"{field}.R{rep}"):
            return
        yield [_value(message, f"{field}.R{rep}.C{c}") for c in components]


def _mrn(message: Er7) -> str:
    ids = list(_repetitions(message, "PID.F3", (1, 5)))
    chosen = next((i for i, kind in ids if kind.upper() == "MR" and i.strip()), None)
    chosen = chosen or next((i for i, _ in ids if i.strip()), None)
    if not chosen:
        raise FieldError("PID-3", "the patient's MRN is required", REQUIRED_FIELD_MISSING)
    if len(chosen.strip()) > 64:
        raise FieldError("PID-3", "is longer than 64 characters")
    return chosen.strip()


def _contact(message: Er7) -> Contact:
    phones: list[tuple[int, str]] = []
    email = None
    for rank_base, field in ((0, "PID.F13"), (10, "PID.F14")):
        for old, use, kind, mail, country, area, local, unformatted in _repetitions(
            message, field, (1, 2, 3, 4, 5, 6, 7, 12)
        ):
            if kind.upper() in ("INTERNET", "X.400") or use.upper() == "NET":
                email = email or (mail or old).strip() or None
                continue
            number = _number(old, country, area, local, unformatted)
            if number:
                # A mobile (in either field) can take texts; then a home line before a work one.
                kind_rank = 0 if kind.upper() == "CP" else 1 if use.upper() == "PRN" else 2
                rank = kind_rank * 100 + rank_base
                phones.append((rank, number))
    phones.sort(key=lambda p: p[0])
    return Contact(
        first_name=_value(message, "PID.F5.R1.C2").strip() or None,
        phone=phones[0][1] if phones else None,
        email=email,
        language=_language(_value(message, "PID.F15.R1.C1")),
    )


def _number(old: str, country: str, area: str, local: str, unformatted: str) -> str | None:
    if unformatted.strip():
        return unformatted.strip()
    if local.strip():
        digits = f"{area}{local}".replace("-", "").replace(" ", "")
        return f"+{country.lstrip('+')}{digits}" if country.strip() else digits
    return old.strip() or None  # the pre-2.3 form, "(202)555-0143", in XTN-1


def _language(raw: str) -> str | None:
    code = raw.strip().lower()
    if not code:
        return None
    if len(code) == 2:
        return code
    return _LANGUAGES.get(code, code.split("-")[0] if "-" in code else code)


def _procedure(message: Er7, procedures: ProcedureMap) -> tuple[str, str | None]:
    """The first PR1 whose code the clinic follows, else the first code; with its timeline."""
    codes = []
    for index in range(message.count("PR1")):
        code = message.get("PR1.F3.R1.C1", index).strip()
        if code:
            system = message.get("PR1.F3.R1.C3", index) or message.get("PR1.F2.R1.C1", index)
            codes.append((coding_system(system), code))
    if not codes:
        raise FieldError("PR1-3", "a procedure code is required", REQUIRED_FIELD_MISSING)
    for system, code in codes:
        timeline = procedures.timeline_for(system, code)
        if timeline:
            return f"{system} {code}", timeline
    system, code = codes[0]
    return f"{system} {code}", None


def _discharge_time(message: Er7, zone: ZoneInfo) -> datetime:
    raw = _value(message, "PV1.F45.R1.C1").strip()
    if not raw:
        raise FieldError("PV1-45", "the discharge time is required", REQUIRED_FIELD_MISSING)
    return parse_ts(raw, zone, "PV1-45")


def parse_ts(raw: str, zone: ZoneInfo, location: str) -> datetime:
    """An HL7 DTM (``YYYYMMDDHHMM[SS[.S]][+ZZZZ]``), in the sender's zone when it has no offset."""
    match = _TS.match(raw)
    if not match:
        raise FieldError(location, "is not an HL7 time with hours and minutes (YYYYMMDDHHMM)")
    year, month, day, hour, minute, second, offset = match.groups()
    if offset:
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        if delta >= timedelta(hours=24):
            raise FieldError(location, "has a UTC offset of 24 hours or more")
        where: timezone | ZoneInfo = timezone(sign * delta)
    else:
        where = zone
    try:
        parts = (int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        return datetime(*parts, tzinfo=where)
    except ValueError:
        raise FieldError(location, "is not a valid date and time") from None
