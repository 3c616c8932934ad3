"""Signing in to the console over real HTTP: sessions the server ends, CSRF, throttling, roles,
two-factor codes and the security headers. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pyotp
import requests
from sqlalchemy import select

from aftercare.accounts import service, totp
from aftercare.models import Event, SignIn, Staff
from tests.console import PASSWORD, csrf_token
from tests.factories import enroll
from tests.web_server import running

NINA = "nina@clinic.example"


def events(app, kind: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def test_a_signed_out_request_is_sent_to_the_sign_in_page(console):
    answer = console.browser().get("/staff")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/staff"


def test_the_sign_in_page_has_email_password_and_a_sign_in_button(console):
    page = console.browser().get("/login").text

    assert '<label for="email">Email</label>' in page
    assert '<label for="password">Password</label>' in page
    assert 'value="Sign in"' in page


def test_the_right_password_signs_in_and_goes_where_the_nurse_was_going(console, make_staff):
    make_staff(NINA, role="admin")
    browser = console.browser()
    browser.get("/staff")

    answer = browser.post(
        "/login?next=/staff", {"email": "Nina@Clinic.Example", "password": PASSWORD}
    )

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/staff"
    assert "Nina Ortiz" in browser.get("/staff").text
    [signed_in] = events(console.app, "signed_in")
    assert signed_in.actor.startswith(f"staff:{NINA}#")


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(console, make_staff):
    make_staff(NINA)
    wrong_password = console.browser().sign_in(NINA, "not the password at all")
    unknown_email = console.browser().sign_in("nobody@clinic.example", PASSWORD)

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert "Email or password is wrong." in wrong_password.text
    assert "Email or password is wrong." in unknown_email.text


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(console, make_staff):
    make_staff(NINA, role="admin")
    browser = console.browser()
    browser.sign_in(NINA)

    answer = browser.http.post(
        console.url + "/staff",
        data={"email": "new@clinic.example", "name": "New", "role": "nurse", "password": PASSWORD},
        allow_redirects=False,
    )

    assert answer.status_code == 400
    assert "Nothing was changed" in answer.text
    assert [a.email for a in service.list_staff(console.app.sessions)] == [NINA]


def test_signing_out_ends_the_sign_in_on_the_server(console, make_staff):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)
    cookie = browser.http.cookies.get("aftercare_console")

    answer = browser.post("/logout", {}, from_page="/")
    assert answer.headers["Location"] == "/login"

    replayed = console.browser()
    replayed.http.cookies.set("aftercare_console", cookie)
    assert replayed.get("/").headers["Location"].startswith("/login")
    with console.app.sessions() as session:
        assert session.scalars(select(SignIn.end_reason)).all() == ["signed out"]


def test_a_sign_in_ends_after_fifteen_minutes_without_activity(console, make_staff, clock):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)
    clock.advance(timedelta(minutes=14))
    assert browser.get("/").status_code == 200

    clock.advance(timedelta(minutes=14))
    assert browser.get("/").status_code == 200  # the request before it was activity

    clock.advance(timedelta(minutes=15))
    answer = browser.get("/")
    assert answer.headers["Location"].startswith("/login")
    page = browser.get("/login").text
    assert "signed out after 15 minutes without activity" in page


def test_a_page_refreshing_itself_does_not_keep_the_sign_in_alive(console, make_staff, clock):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)
    refresh = {"X-Aftercare-Background": "1", "HX-Request": "true"}
    for _ in range(3):
        clock.advance(timedelta(minutes=6))
        answer = browser.get("/", headers=refresh)

    assert answer.status_code == 204
    assert answer.headers["HX-Redirect"] == "/login"


def test_a_sign_in_ends_after_its_lifetime_however_busy(console, make_staff, clock):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)
    for _ in range(12 * 6):
        clock.advance(timedelta(minutes=10))
        last = browser.get("/")

    assert last.headers["Location"].startswith("/login")
    assert "time limit" in browser.get("/login").text


def test_five_failed_sign_ins_slow_the_account_down_with_a_clear_message(
    console, make_staff, clock
):
    make_staff(NINA)
    for attempt in range(4):
        assert console.browser().sign_in(NINA, f"wrong password {attempt}").status_code == 401

    fifth = console.browser().sign_in(NINA, "wrong password 5")
    assert fifth.status_code == 429
    assert "Too many failed sign-ins" in fifth.text
    assert "Try again in 30 seconds." in fifth.text

    # Even the right password waits: otherwise the wait would protect nothing.
    assert console.browser().sign_in(NINA).status_code == 429
    clock.advance(timedelta(seconds=31))
    assert console.browser().sign_in(NINA).status_code == 302


def test_failures_from_one_address_slow_it_down_for_every_account(console, make_staff):
    make_staff(NINA)
    for attempt in range(5):
        console.browser().sign_in(f"guess{attempt}@clinic.example", "wrong password")

    answer = console.browser().sign_in(NINA)

    assert answer.status_code == 429
    assert len(events(console.app, "signin_failed")) == 5


def test_a_viewer_is_refused_staff_management_and_the_attempt_is_audited(console, make_staff):
    make_staff(NINA, role="viewer")
    browser = console.browser()
    browser.sign_in(NINA)

    answer = browser.get("/staff")

    assert answer.status_code == 403
    assert "needs the admin role" in answer.text
    [forbidden] = events(console.app, "forbidden")
    assert forbidden.actor.startswith(f"staff:{NINA}#")
    assert forbidden.detail["page"] == "console.staff_list"


def test_disabling_an_account_ends_its_sign_ins_at_once(console, make_staff):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)

    service.disable_staff(console.app.sessions, NINA, "test", console.app.clock.now())

    assert browser.get("/").headers["Location"].startswith("/login")
    assert "disabled" in console.browser().sign_in(NINA).text


def test_the_cookie_is_http_only_and_same_site_lax_and_pages_carry_security_headers(
    console, make_staff
):
    make_staff(NINA)
    answer = console.browser().sign_in(NINA)
    cookie = answer.headers["Set-Cookie"]

    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # AFTERCARE_PUBLIC_URL is not https here
    page = console.browser().get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"


def test_an_account_with_two_factor_needs_the_code_after_the_password(console, make_staff, clock):
    account = make_staff(NINA)
    secret = pyotp.random_base32()
    code = pyotp.TOTP(secret).at(clock.now())
    assert totp.turn_on(console.app.sessions, account.id, secret, code, None, clock.now())
    browser = console.browser()

    answer = browser.sign_in(NINA)
    assert answer.headers["Location"] == "/login/code"
    assert browser.get("/").headers["Location"].startswith("/login")  # not signed in yet
    wrong = browser.post("/login/code", {"code": "000000"})
    assert "That code is wrong" in wrong.text

    clock.advance(timedelta(seconds=30))
    right = browser.post("/login/code", {"code": pyotp.TOTP(secret).at(clock.now())})
    assert right.headers["Location"] == "/"
    assert browser.get("/").status_code == 200


def test_when_an_admin_requires_two_factor_an_account_without_it_sets_it_up(
    console, make_staff, clock
):
    make_staff(NINA)
    totp.set_required(console.app.sessions, True, "test", clock.now())
    browser = console.browser()

    assert browser.sign_in(NINA).headers["Location"] == "/login/setup"
    page = browser.get("/login/setup").text
    secret = page.split('<code class="secret">')[1].split("<")[0]
    assert 'src="data:image/svg+xml' in page

    answer = browser.post("/login/setup", {"code": pyotp.TOTP(secret).at(clock.now())})

    assert answer.headers["Location"] == "/"
    with console.app.sessions() as session:
        assert session.scalar(select(Staff.totp_secret)) == secret


def test_the_csrf_token_helper_finds_the_token(console):
    assert csrf_token(console.browser().get("/login").text)


def test_a_nurse_turns_on_two_factor_from_her_account_page(console, make_staff, clock):
    make_staff(NINA)
    browser = console.browser()
    browser.sign_in(NINA)
    page = browser.get("/account").text
    assert "Two-factor sign-in" in page
    secret = page.split('<code class="secret">')[1].split("<")[0]

    code = pyotp.TOTP(secret).at(clock.now())
    answer = browser.post("/account/two-factor/on", {"code": code}, from_page="/account")

    assert answer.headers["Location"] == "/account"
    assert "Two-factor sign-in is on" in browser.get("/account").text
    assert console.browser().sign_in(NINA).headers["Location"] == "/login/code"


def test_console_sign_ins_and_refusals_are_in_aftercare_audit(console, make_staff, run):
    viewer = make_staff(NINA, role="viewer")
    browser = console.browser()
    browser.sign_in(NINA)
    browser.get("/staff")

    exported = run("audit", "--since", "1d", "--json").stdout

    kinds = [(e["kind"], e["actor"]) for e in json.loads(exported)]
    assert kinds == [
        ("staff_added", "test"),
        ("signed_in", viewer.actor),
        ("forbidden", viewer.actor),
    ]
    assert viewer.actor == f"staff:{NINA}#{viewer.id}"


def test_the_cookie_is_secure_when_the_public_url_is_https(app):
    app.settings = app.settings.with_overrides(
        public_url="https://care.example.org", secret_key="console-test-secret-0123456789"
    )
    with running(app) as web:
        answer = requests.get(web.url + "/login", timeout=10)

    assert "; Secure" in answer.headers["Set-Cookie"]


def test_an_unknown_staff_id_is_not_found(console, make_staff):
    make_staff(NINA, role="admin")
    browser = console.browser()
    browser.sign_in(NINA)

    answer = browser.get("/staff/999/password")

    assert answer.status_code == 404
    assert "There is nothing at this address." in answer.text


def test_a_two_factor_code_signs_in_only_once(console, make_staff, clock):
    account = make_staff(NINA)
    secret = pyotp.random_base32()
    totp.turn_on(console.app.sessions, account.id, secret, pyotp.TOTP(secret).at(clock.now()),
                 None, clock.now())  # fmt: skip
    clock.advance(timedelta(seconds=30))
    code = pyotp.TOTP(secret).at(clock.now())
    first, second = console.browser(), console.browser()
    first.sign_in(NINA)
    second.sign_in(NINA)

    assert first.post("/login/code", {"code": code}).headers["Location"] == "/"
    replayed = second.post("/login/code", {"code": code})

    assert replayed.status_code == 401
    assert "That code is wrong or has expired" in replayed.text


def test_aftercare_audit_shows_who_looked_at_which_patient(console, make_staff, run):
    enrollment_id = enroll(console.app)
    viewer = make_staff(NINA, role="viewer")
    browser = console.browser()
    browser.sign_in(NINA)
    assert browser.get(f"/patients/{enrollment_id}").status_code == 200

    table = run("audit", "--since", "1d", "--enrollment", str(enrollment_id)).stdout

    [looked] = [line for line in table.splitlines() if " viewed " in line]
    assert viewer.actor in looked
    assert f"  {enrollment_id}  " in looked
    assert "page:patient" in looked
