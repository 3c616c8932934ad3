"""The console's pages over real HTTP (waitress, a signed-in browser-like client): the worklist,
the roster and its CSV, a patient's page and its actions, enrolling with a preview, importing a
CSV, the timelines. Runs on SQLite and PostgreSQL; asserts what staff see and what is stored."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from aftercare import inbox
from aftercare.models import Enrollment, Event, Message, Patient, Reply

NINA = "nina@clinic.example"
ANA = "+12025550143"


@pytest.fixture
def nurse(console, make_staff):
    make_staff(NINA, role="nurse")
    browser = console.browser()
    assert browser.sign_in(NINA).status_code == 302
    return browser


@pytest.fixture
def ana(run, enroll_args):
    return json.loads(run(*enroll_args(external_id="MRN-0042"), "--json").output)["id"]


def texts(app, clock, body, number=ANA):
    clock.advance(timedelta(minutes=1))
    inbox.receive(app, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body})


def count(app, model, *where):
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_worklist_names_the_urgent_reply_and_counts_it_in_the_title(console, nurse, ana, clock):
    texts(console.app, clock, "I have a fever")
    page = nurse.get("/").text
    assert "<title>(1) Worklist — aftercare</title>" in page
    assert "Urgent reply" in page and "I have a fever" in page
    assert "Mon Nov 23, 11:01 CST" in page  # patient-local, with the zone
    assert "Mark handled" in page


def test_an_empty_worklist_says_so(console, nurse):
    page = nurse.get("/").text
    assert "<title>Worklist — aftercare</title>" in page
    assert "Nothing needs attention." in page


def test_marking_a_reply_handled_records_the_nurse_and_the_note(console, nurse, ana, clock):
    texts(console.app, clock, "Can I shower?")
    with console.app.sessions() as session:
        reply_id = session.scalar(select(Reply.id))
    answer = nurse.post(
        f"/worklist/reply/{reply_id}/handled", {"note": "called her back"}, from_page="/"
    )
    assert answer.status_code == 302
    assert "Nothing needs attention." in nurse.get("/").text
    with console.app.sessions() as session:
        reply = session.get(Reply, reply_id)
        event = session.scalars(select(Event).where(Event.kind == "reply_handled")).one()
    assert reply.handled_by == event.actor and event.actor.startswith(f"staff:{NINA}#")
    assert event.reason == "called her back"


def test_the_htmx_refresh_gets_the_fragment_with_its_title(console, nurse, ana, clock):
    texts(console.app, clock, "I have a fever")
    fragment = nurse.get("/", headers={"HX-Request": "true", "X-Aftercare-Background": "1"})
    assert fragment.text.startswith("<title>(1) Worklist — aftercare</title>")
    assert "<html" not in fragment.text


def test_the_roster_searches_by_last_four_digits_without_logging_the_term(
    console, nurse, ana, caplog
):
    found = nurse.post("/patients", {"q": "0143"})
    assert "Ana" in found.text and "MRN-0042" in found.text
    assert "No patient matches these filters." in nurse.post("/patients", {"q": "9999"}).text
    assert "0143" not in caplog.text
    assert nurse.get("/patients?q=0143").text.count("MRN-0042") == 1  # a URL's search is ignored


def test_the_roster_exports_csv_with_masked_phones(console, nurse, ana):
    answer = nurse.post("/patients.csv", {"q": "ana"}, from_page="/patients")
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["first_name"], r["phone"], r["external_id"]) for r in rows] == [
        ("Ana", "+1******0143", "MRN-0042")
    ]
    assert rows[0]["next_message_local"].endswith("CST")


def test_viewing_a_patient_is_audited_and_shows_masked_contacts(console, nurse, ana):
    page = nurse.get(f"/patients/{ana}").text
    assert "+1******0143" in page and ANA not in page
    assert "a***@example.org" in page
    assert "welcome-home #0" in page
    viewed = count(console.app, Event, Event.kind == "viewed", Event.enrollment_id == ana)
    assert viewed == 1


def test_a_message_text_is_shown_on_demand(console, nurse, ana):
    with console.app.sessions() as session:
        first = session.scalar(select(Message.id).where(Message.enrollment_id == ana))
    page = nurse.get(f"/patients/{ana}?text={first}").text
    assert "Spine Care Clinic" in page  # the rendered SMS names the clinic


def test_pause_then_resume_from_the_patient_page(console, nurse, ana):
    answer = nurse.post(f"/patients/{ana}/pause", {"reason": "readmitted"}, f"/patients/{ana}")
    assert answer.status_code == 302
    page = nurse.get(f"/patients/{ana}").text
    assert "Paused: 18 message(s) held." in page and "readmitted" in page
    nurse.post(f"/patients/{ana}/resume", {"reason": ""}, f"/patients/{ana}")
    with console.app.sessions() as session:
        assert session.get(Enrollment, ana).status == "active"
        kinds = session.scalars(select(Event.kind).where(Event.enrollment_id == ana)).all()
    assert "paused" in kinds and "resumed" in kinds


def test_cancel_needs_a_reason(console, nurse, ana):
    nurse.post(f"/patients/{ana}/cancel", {"reason": "  "}, f"/patients/{ana}")
    assert "Reason: is empty" in nurse.get(f"/patients/{ana}").text
    with console.app.sessions() as session:
        assert session.get(Enrollment, ana).status == "active"


def test_a_viewer_may_read_a_patient_but_not_pause(console, make_staff, ana):
    make_staff("vic@clinic.example", role="viewer")
    viewer = console.browser()
    viewer.sign_in("vic@clinic.example")
    assert viewer.get(f"/patients/{ana}").status_code == 200
    answer = viewer.post(f"/patients/{ana}/pause", {}, f"/patients/{ana}")
    assert answer.status_code == 403
    with console.app.sessions() as session:
        assert session.get(Enrollment, ana).status == "active"


FORM = {
    "first_name": "Bo",
    "phone": "(202) 555-0144",
    "email": "",
    "timezone": "America/Denver",
    "procedure": "vertebroplasty",
    "discharged_at": "2026-11-23T09:15",
    "language": "es",
    "external_id": "",
}


def test_the_enroll_form_starts_with_the_clinic_zone_and_now(console, nurse):
    page = nurse.get("/enroll").text
    for label in ("First name", "Mobile phone", "Email", "Time zone", "Procedure",
                  "Discharged at", "Language", "External id"):  # fmt: skip
        assert f">{label}</label>" in page
    assert 'value="America/New_York"' in page
    assert 'value="2026-11-23T12:00"' in page  # 17:00 UTC in New York


def test_enroll_previews_every_message_at_patient_time_then_saves(console, nurse):
    preview = nurse.post("/enroll", FORM | {"action": "preview"})
    assert preview.status_code == 200
    assert "Preview: " in preview.text and "MST" in preview.text
    assert count(console.app, Patient) == 0  # a preview writes nothing
    saved = nurse.post("/enroll", FORM | {"action": "enroll"})
    assert saved.status_code == 302
    with console.app.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        patient = enrollment.patient
        event = session.scalars(select(Event).where(Event.kind == "enrolled")).one()
    assert (patient.phone, patient.timezone, patient.language) == (
        "+12025550144", "America/Denver", "es",
    )  # fmt: skip
    assert enrollment.discharged_at.isoformat() == "2026-11-23T16:15:00+00:00"
    assert event.actor.startswith(f"staff:{NINA}#")
    again = nurse.post("/enroll", FORM | {"action": "enroll"})
    assert again.headers["Location"] == saved.headers["Location"]  # idempotent, like the CLI


def test_a_bad_field_is_named_beside_it_in_the_cli_words(console, nurse):
    answer = nurse.post("/enroll", FORM | {"timezone": "CST", "action": "preview"})
    assert answer.status_code == 422
    assert (
        '<p class="field-error" id="e-timezone">Time zone: \'CST\' is not an IANA time zone '
        "(e.g. America/New_York)</p>"
    ) in answer.text.replace("&#39;", "'")
    assert count(console.app, Patient) == 0


def upload(browser, content: str):
    page = browser.get("/import")
    from tests.console import csrf_token

    return browser.http.post(
        browser.url + "/import",
        data={"csrf_token": csrf_token(page.text)},
        files={"file": ("discharges.csv", content.encode(), "text/csv")},
        allow_redirects=False,
        timeout=10,
    )


CSV = (
    "first_name,phone,timezone,procedure,discharged_at\n"
    "Ana,+12025550143,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00\n"
    "Bo,not a phone,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00\n"
)


def test_import_shows_the_dry_run_row_by_row_then_enrolls_the_good_rows(console, nurse):
    dry = upload(nurse, CSV)
    assert dry.status_code == 200
    assert "<td>3</td><td>phone</td>" in dry.text
    assert count(console.app, Patient) == 0
    from tests.console import csrf_token

    confirm = nurse.http.post(
        nurse.url + "/import/confirm",
        data={"csrf_token": csrf_token(dry.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert confirm.status_code == 302
    assert (
        "Imported: 1 enrolled, 0 already enrolled, 1 bad row(s) skipped."
        in nurse.get("/patients").text
    )
    assert count(console.app, Patient) == 1


def test_the_timelines_page_shows_texts_per_language_and_the_lint(console, nurse):
    page = nurse.get("/timelines").text
    assert "kyphoplasty" in page and "vertebroplasty" in page
    assert "Lint: no errors." in page
    assert "Responda STOP" in page or "STOP" in page


def test_a_viewer_sees_no_action_forms(console, make_staff, ana, clock):
    texts(console.app, clock, "Can I shower?")
    make_staff("vic@clinic.example", role="viewer")
    viewer = console.browser()
    viewer.sign_in("vic@clinic.example")
    assert "Mark handled" not in viewer.get("/").text
    assert "Cancel reminders" not in viewer.get(f"/patients/{ana}").text


def test_contact_details_and_language_are_corrected_and_the_event_names_only_the_fields(
    console, nurse, ana
):
    form = {"phone": "(202) 555-0199", "email": "", "language": "es"}
    nurse.post(f"/patients/{ana}/contact", form, f"/patients/{ana}")
    assert "Changed: phone, language." in nurse.get(f"/patients/{ana}").text
    with console.app.sessions() as session:
        patient = session.get(Enrollment, ana).patient
        event = session.scalars(select(Event).where(Event.kind == "contact_edited")).one()
    assert (patient.phone, patient.email, patient.language) == (
        "+12025550199", "ana@example.org", "es",
    )  # fmt: skip
    assert event.detail == {"fields": ["phone", "language"]}
    assert event.actor.startswith(f"staff:{NINA}#")


def test_a_bad_phone_on_the_contact_form_is_named_and_changes_nothing(console, nurse, ana):
    nurse.post(f"/patients/{ana}/contact", {"phone": "12", "language": "en"}, f"/patients/{ana}")
    assert "Mobile phone: " in nurse.get(f"/patients/{ana}").text
    with console.app.sessions() as session:
        assert session.get(Enrollment, ana).patient.phone == ANA
