"""Builds HL7 v2 ADT messages for tests: fields by number, so each test says only what it varies."""

from __future__ import annotations

from collections.abc import Mapping

Fields = Mapping[int, str]

PID: Fields = {
    1: "1",
    3: "MRN0042^^^GENERAL^MR",
    5: "Garcia^Ana^M",
    13: "^PRN^CP^^1^202^5550143",
    15: "SPA",
}
PV1: Fields = {1: "1", 2: "O", 19: "V0042-1^^^GENERAL^VN", 45: "202611231030-0600"}
PR1: Fields = {1: "1", 3: "22513^Kyphoplasty^CPT4"}


def segment(name: str, fields: Fields) -> str:
    last = max(fields, default=0)
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def message(
    event: str = "A03",
    control_id: str = "CTRL-1",
    pid: Fields | None = None,
    pv1: Fields | None = None,
    pr1: Fields | None = None,
    extra: tuple[str, ...] = (),
    procedure: bool = True,
) -> str:
    """An ADT message; ``pid``/``pv1``/``pr1`` replace fields of the defaults ("" blanks one);
    ``procedure=False`` leaves out the PR1 segment."""
    structure = {"A03": "ADT_A03", "A40": "ADT_A39"}.get(event, "ADT_A01")
    segments = [
        f"MSH|^~\\&|EPIC|GENERAL|AFTERCARE|SPINE|20261123103000-0600||ADT^{event}^{structure}"
        f"|{control_id}|P|2.5",
        f"EVN|{event}|20261123103000-0600",
        segment("PID", {**PID, **(pid or {})}),
        segment("PV1", {**PV1, **(pv1 or {})}),
    ]
    if procedure:
        segments.append(segment("PR1", {**PR1, **(pr1 or {})}))
    return "\r".join([*segments, *extra]) + "\r"
