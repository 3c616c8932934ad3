"""An ADT message becomes a neutral request; a bad one names the HL7 field that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare.errors import SettingsError
from aftercare.intake import hl7v2
from aftercare.intake.mapping import load_map
from aftercare.intake.requests import CancelVisit, Discharge, MergePatients, UpdateContact
from aftercare.schedules.load import Catalog
from tests import adt

CHICAGO = ZoneInfo("America/Chicago")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "adt"


@pytest.fixture(scope="module")
def procedures() -> hl7v2.ProcedureMap:
    return load_map(None, Catalog.default())


def parse(text: str, procedures: hl7v2.ProcedureMap) -> object:
    header, message = hl7v2.read_message(text)
    return hl7v2.to_request(header, message, procedures, CHICAGO).request


def test_a_discharge_carries_the_mrn_visit_mobile_language_time_and_timeline(procedures):
    request = parse((EXAMPLES / "a03-kyphoplasty.hl7").read_text(), procedures)
    assert isinstance(request, Discharge)
    assert (request.external_id, request.visit) == ("MRN0042", "V0042-1")
    assert request.contact.first_name == "Ana"
    assert request.contact.phone == "+12025550143"  # the mobile (CP), not the home line first
    assert request.contact.email == "ana@example.org"
    assert request.contact.language == "es"
    assert request.discharged_at == datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    assert (request.procedure, request.procedure_code) == ("kyphoplasty", "CPT 22513")


@pytest.mark.parametrize(
    ("code", "timeline"),
    [
        ("22510", "vertebroplasty"),
        ("22511", "vertebroplasty"),
        ("22512", "vertebroplasty"),
        ("22513", "kyphoplasty"),
        ("22514", "kyphoplasty"),
        ("27447", None),
    ],
)
def test_cpt_codes_map_to_the_built_in_timelines(procedures, code, timeline):
    request = parse(adt.message(pr1={3: f"{code}^x^CPT4"}), procedures)
    assert isinstance(request, Discharge)
    assert request.procedure == timeline


def test_a_discharge_time_without_an_offset_is_in_the_facility_zone(procedures):
    request = parse(adt.message(pv1={45: "202611231030"}), procedures)
    assert isinstance(request, Discharge)
    assert request.discharged_at.astimezone(UTC) == datetime(2026, 11, 23, 16, 30, tzinfo=UTC)


def test_the_mr_identifier_is_the_mrn_whatever_its_position(procedures):
    request = parse(adt.message(pid={3: "123-45^^^SSA^SS~MRN9^^^GENERAL^MR"}), procedures)
    assert isinstance(request, Discharge)
    assert request.external_id == "MRN9"


def test_a_mobile_in_the_business_phone_field_is_preferred_to_a_home_line(procedures):
    text = adt.message(pid={13: "^PRN^PH^^1^312^5550100", 14: "^WPN^CP^^1^202^5550111"})
    request = parse(text, procedures)
    assert isinstance(request, Discharge)
    assert request.contact.phone == "+12025550111"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pid": {3: ""}}, "PID-3"),
        ({"pv1": {45: ""}}, "PV1-45"),
        ({"pv1": {45: "20261123"}}, "PV1-45"),
        ({"pv1": {45: "202613231030"}}, "PV1-45"),
        ({"procedure": False}, "PR1-3"),
    ],
)
def test_a_missing_or_malformed_field_is_named(procedures, changes, field):
    with pytest.raises(hl7v2.FieldError) as raised:
        parse(adt.message(**changes), procedures)
    assert raised.value.field == field


def test_cancel_update_and_merge_messages(procedures):
    cancel = parse((EXAMPLES / "a13-cancel-discharge.hl7").read_text(), procedures)
    assert cancel == CancelVisit("MRN0042", "V0042-1", "discharge")
    update = parse((EXAMPLES / "a08-new-mobile.hl7").read_text(), procedures)
    assert isinstance(update, UpdateContact)
    assert update.contact.phone == "+12025550199"
    merge = parse((EXAMPLES / "a40-merge.hl7").read_text(), procedures)
    assert merge == MergePatients("MRN0042", "TMP-7781")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hello", "207"),
        ("MSH|^~\\&|A|B|C|D|20261123||ADT^A03|", "101"),
        ("MSH|^~\\&|A|B|C|D|20261123||ORU^R01|X1|P|2.5\r", "200"),
        ("MSH|^~\\&|A|B|C|D|20261123||ADT^A04|X1|P|2.5\r", "201"),
    ],
)
def test_what_cannot_be_processed_is_rejected_with_a_table_0357_code(text, code):
    with pytest.raises(hl7v2.Rejected) as raised:
        hl7v2.read_message(text)
    assert raised.value.code == code


def test_escapes_are_undone(procedures):
    request = parse(adt.message(pid={5: "Garcia^Ana\\T\\Mar\\F\\ia"}), procedures)
    assert isinstance(request, Discharge)
    assert request.contact.first_name == "Ana&Mar|ia"


def test_a_mapping_file_adds_codes_and_is_checked_against_the_timelines(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text('SNOMED:\n  "392010000": kyphoplasty\nCPT:\n  "22510": kyphoplasty\n')
    mapping = load_map(path, Catalog.default())
    assert mapping.timeline_for("http://snomed.info/sct", "392010000") == "kyphoplasty"
    assert mapping.timeline_for("CPT4", "22510") == "kyphoplasty"  # the file wins
    path.write_text('CPT:\n  "99999": knee\n')
    with pytest.raises(SettingsError, match=r"AFTERCARE_HL7_MAP: .*99999.*'knee'"):
        load_map(path, Catalog.default())
