"""Which hospital procedure codes start which timeline (``AFTERCARE_HL7_MAP``).

Hospitals code procedures in CPT (HL7 v2 PR1-3, FHIR Procedure.code) or SNOMED CT (FHIR). The
built-in map covers the codes of the procedures this clinic follows; a mapping file adds codes
or sends them to other timelines:

    CPT:
      "22510": vertebroplasty
    SNOMED:
      "392010000": kyphoplasty

A code that is in no map is a procedure the clinic does not follow: the message is acknowledged
and ignored, never an error, because a hospital's feed carries every discharge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from aftercare.errors import SettingsError
from aftercare.schedules.load import Catalog

# CPT 2026: 22510-22512 percutaneous vertebroplasty (cervicothoracic, lumbosacral, each
# additional level), 22513-22515 percutaneous vertebral augmentation (kyphoplasty). 22515 is
# the add-on code for each additional level; it arrives with 22513 or 22514 and maps the same.
BUILT_IN: Mapping[str, Mapping[str, str]] = {
    "CPT": {
        "22510": "vertebroplasty",
        "22511": "vertebroplasty",
        "22512": "vertebroplasty",
        "22513": "kyphoplasty",
        "22514": "kyphoplasty",
        "22515": "kyphoplasty",
    },
}

# The spellings of a coding system seen in HL7 v2 (table 0396, older feeds) and FHIR URIs.
_SYSTEMS = {
    "cpt": "CPT",
    "cpt4": "CPT",
    "cpt-4": "CPT",
    "c4": "CPT",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "sct": "SNOMED",
    "sno": "SNOMED",
    "snomed": "SNOMED",
    "snomedct": "SNOMED",
    "snomed-ct": "SNOMED",
    "http://snomed.info/sct": "SNOMED",
}


def coding_system(raw: str | None) -> str:
    """The canonical name of a coding system; a blank one is CPT (what ADT feeds mostly send)."""
    text = (raw or "").strip()
    if not text:
        return "CPT"
    return _SYSTEMS.get(text.lower(), text.upper())


@dataclass(frozen=True)
class ProcedureMap:
    codes: Mapping[str, Mapping[str, str]]

    def timeline_for(self, system: str | None, code: str) -> str | None:
        """The timeline's name, or None for a procedure the clinic does not follow."""
        return self.codes.get(coding_system(system), {}).get(code.strip())


def load_map(path: Path | None, catalog: Catalog) -> ProcedureMap:
    """The built-in codes plus the file's; the file wins for a code both name.

    Raises SettingsError naming the setting, the file and the bad entry.
    """
    merged = {system: dict(codes) for system, codes in BUILT_IN.items()}
    for system, code, timeline in _read(path) if path else ():
        merged.setdefault(coding_system(system), {})[code] = timeline
    known = set(catalog.names())
    for system, codes in merged.items():
        for code, timeline in codes.items():
            if timeline not in known:
                where = f"{path}: " if path else ""
                raise SettingsError(
                    f"AFTERCARE_HL7_MAP: {where}{system} {code} maps to {timeline!r}, "
                    f"which is not a timeline (known: {', '.join(sorted(known))})"
                )
    return ProcedureMap(merged)


def _read(path: Path) -> list[tuple[str, str, str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"AFTERCARE_HL7_MAP: {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"AFTERCARE_HL7_MAP: {path}: expected a mapping of coding systems")
    entries = []
    for system, codes in data.items():
        if not isinstance(codes, dict):
            raise SettingsError(f"AFTERCARE_HL7_MAP: {path}: {system}: expected code: timeline")
        for code, timeline in codes.items():
            if not isinstance(timeline, str) or not str(code).strip():
                raise SettingsError(f"AFTERCARE_HL7_MAP: {path}: {system} {code}: bad entry")
            entries.append((str(system), str(code).strip(), timeline.strip().lower()))
    return entries
