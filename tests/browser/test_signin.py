"""Signing in and out of the console in Chromium, as a nurse would."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from tests.console import PASSWORD


def test_a_nurse_signs_in_with_email_and_password_and_lands_on_the_worklist(
    console, page: Page, make_staff
):
    make_staff("nina@clinic.example", role="nurse")
    page.goto(console.url + "/login")

    page.get_by_label("Email").fill("nina@clinic.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_title(re.compile("Worklist — aftercare"))
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    expect(page.get_by_text("Nina Ortiz")).to_be_visible()


def test_a_signed_out_visitor_is_sent_to_sign_in_and_then_back(console, page: Page, make_staff):
    make_staff("ada@clinic.example", role="admin")
    page.goto(console.url + "/staff")

    expect(page).to_have_url(re.compile(r"/login\?next=/staff$"))
    page.get_by_label("Email").fill("ada@clinic.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")

    expect(page).to_have_url(console.url + "/staff")
    expect(page.get_by_role("heading", name="Staff")).to_be_visible()


def test_a_wrong_password_is_said_beside_the_form(console, page: Page, make_staff):
    make_staff("nina@clinic.example")
    page.goto(console.url + "/login")
    page.get_by_label("Email").fill("nina@clinic.example")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("Email or password is wrong.")
    expect(page.get_by_label("Email")).to_have_value("nina@clinic.example")


def test_a_post_without_the_csrf_token_is_refused(console, page: Page, sign_in):
    sign_in("admin")
    page.goto(console.url + "/staff")
    page.locator("form[action='/staff'] input[name='csrf_token']").evaluate("e => e.remove()")
    page.get_by_label("Email").fill("new@clinic.example")
    page.get_by_label("Name").fill("New Nurse")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Add account").click()

    expect(page.get_by_text("Nothing was changed")).to_be_visible()
    page.goto(console.url + "/staff")
    expect(page.get_by_text("new@clinic.example")).to_have_count(0)


def test_a_viewer_is_refused_the_staff_page(console, page: Page, sign_in):
    sign_in("viewer")
    expect(page.get_by_role("link", name="Staff")).to_have_count(0)

    answer = page.goto(console.url + "/staff")

    assert answer is not None and answer.status == 403
    expect(page.get_by_text("may not do this; it needs the admin role")).to_be_visible()


def test_after_fifteen_idle_minutes_the_next_click_asks_to_sign_in_again(
    console, page: Page, sign_in, clock
):
    sign_in("nurse")
    clock.advance(timedelta(minutes=16))

    page.get_by_role("link", name="Worklist").click()

    expect(page).to_have_url(re.compile("/login"))
    expect(page.get_by_role("status")).to_contain_text(
        "signed out after 15 minutes without activity"
    )


def test_signing_out_returns_to_the_sign_in_page_and_back_does_not_reopen(
    console, page: Page, sign_in
):
    sign_in("nurse")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")

    page.go_back()
    page.reload()
    expect(page).to_have_url(re.compile("/login"))
