"""A nurse's day in Chromium: enroll with the preview, find the patient, act on an urgent reply
from the worklist, pause and resume, import a CSV with a bad row.

Each test also saves what it shows (1280 and 768 px wide) in its temporary folder; with
AFTERCARE_SCREENSHOTS_DIR set they are saved there too (``docs/`` keeps the README's).
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from aftercare import inbox

WIDTHS = (1280, 768)


@pytest.fixture
def shoot(page: Page, screens: Path):
    """Function: screenshots of the page at each width, named ``console-<name>[-768].png``."""
    extra = os.environ.get("AFTERCARE_SCREENSHOTS_DIR")

    def take(name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            suffix = "" if width == WIDTHS[0] else f"-{width}"
            for folder in (screens, *([Path(extra)] if extra else [])):
                page.screenshot(path=folder / f"console-{name}{suffix}.png", full_page=True)
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    return take


def enroll_in_form(page: Page, url: str, first_name: str, phone: str) -> None:
    page.goto(url + "/enroll")
    page.get_by_label("First name").fill(first_name)
    page.get_by_label("Mobile phone").fill(phone)
    page.get_by_label("Email").fill("ana@example.org")
    page.get_by_label("Time zone").fill("America/Chicago")
    page.get_by_label("Procedure").select_option("kyphoplasty")
    page.get_by_label("Discharged at").fill("2026-11-23T10:30")
    page.get_by_label("Language").select_option("es")
    page.get_by_label("External id").fill("MRN-0042")


def test_a_nurse_enrolls_after_previewing_every_message(console, page: Page, sign_in, shoot):
    sign_in("nurse")
    enroll_in_form(page, console.url, "Ana", "(202) 555-0143")
    page.get_by_role("button", name="Preview messages").click()

    preview = page.get_by_role("heading", name=re.compile(r"Preview: \d+ messages"))
    expect(preview).to_be_visible()
    expect(page.locator("table.preview")).to_contain_text("CST")
    expect(page.locator("table.preview")).to_contain_text("Spine Care Clinic")
    shoot("enroll-preview")
    page.get_by_role("button", name="Enroll").first.click()

    expect(page.get_by_role("heading", name=re.compile("^Ana"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Enrolled: \d+ messages planned"))).to_be_visible()


def test_a_wrong_field_is_named_beside_it_and_nothing_is_saved(console, page: Page, sign_in):
    sign_in("nurse")
    enroll_in_form(page, console.url, "Ana", "not a phone")
    page.get_by_role("button", name="Preview messages").click()

    expect(page.locator("#e-phone")).to_contain_text("Mobile phone:")
    expect(page.get_by_label("Mobile phone")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("First name")).to_have_value("Ana")


def test_a_nurse_finds_the_patient_by_the_last_four_digits(
    console, page: Page, sign_in, run, enroll_args
):
    run(*enroll_args(first_name="Ana"))
    run(*enroll_args(first_name="Bo", phone="+12025550177"))
    sign_in("viewer")
    page.goto(console.url + "/patients")
    page.get_by_label("Search").fill("0177")
    page.get_by_label("Search").press("Enter")

    rows = page.locator("table.roster tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name="Bo").click()
    expect(page.get_by_role("heading", name=re.compile("^Bo"))).to_be_visible()


def test_an_urgent_reply_is_handled_from_the_worklist_with_a_note(
    console, page: Page, sign_in, run, enroll_args, clock, shoot
):
    run(*enroll_args(first_name="Ana"))
    run(*enroll_args(first_name="Bo", phone="+12025550177"))
    for number, body in (("+12025550177", "Can I shower?"), ("+12025550143", "I have a fever")):
        clock.advance(timedelta(minutes=30))
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body}
        inbox.receive(console.app, form)
    clock.advance(timedelta(hours=2))
    sign_in("nurse")

    expect(page).to_have_title("(1) Worklist — aftercare")
    first = page.locator("li.item").first
    expect(first).to_contain_text("Urgent reply")
    expect(first).to_contain_text("I have a fever")
    expect(first).to_contain_text("2 h ago")
    shoot("worklist")
    first.get_by_label("Note (optional)").fill("Called Ana; coming in today")
    first.get_by_role("button", name="Mark handled").click()

    expect(page.get_by_text("Marked handled.")).to_be_visible()
    expect(page).to_have_title("Worklist — aftercare")
    expect(page.locator("li.item")).to_have_count(1)  # Bo's question is still there


def test_a_nurse_pauses_and_resumes_a_patient(
    console, page: Page, sign_in, run, enroll_args, clock, shoot
):
    run(*enroll_args(first_name="Ana"))
    for score in ("4", "8"):
        clock.advance(timedelta(days=1))
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": "+12025550143", "Body": score}
        inbox.receive(console.app, form)
    sign_in("nurse")
    page.goto(console.url + "/patients/1")
    expect(page.locator("svg.pain-chart")).to_be_visible()
    shoot("patient")

    page.get_by_label("Reason (optional)").first.fill("readmitted")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text(re.compile(r"Paused: \d+ message\(s\) held"))).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_text(re.compile(r"Resumed: \d+ message\(s\) pending again"))).to_be_visible()
    expect(page.locator("table.history")).to_contain_text("paused")


def test_an_import_shows_the_bad_row_then_enrolls_the_good_ones(
    console, page: Page, sign_in, tmp_path
):
    csv_file = tmp_path / "discharges.csv"
    csv_file.write_text(
        "first_name,phone,timezone,procedure,discharged_at\n"
        "Ana,+12025550143,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00\n"
        "Bo,+12025550177,CST,kyphoplasty,2026-11-23T10:30-06:00\n"
    )
    sign_in("nurse")
    page.goto(console.url + "/import")
    page.get_by_label("CSV file").set_input_files(csv_file)
    page.get_by_role("button", name="Check the file").click()

    problems = page.locator("table.problems tbody tr")
    expect(problems).to_have_count(1)
    expect(problems).to_contain_text("3")
    expect(problems).to_contain_text("timezone")
    page.get_by_role("button", name="Enroll the 1 good row").click()
    expect(
        page.get_by_text("Imported: 1 enrolled, 0 already enrolled, 1 bad row(s) skipped.")
    ).to_be_visible()
    expect(page.locator("table.roster tbody tr")).to_have_count(1)
