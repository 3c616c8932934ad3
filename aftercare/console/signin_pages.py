"""/login (password, then the code when two-factor is on) and /logout."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyotp
from flask import flash, redirect, render_template, request, url_for
from flask import session as cookie  # the signed cookie, not a database session
from werkzeug.wrappers import Response

from aftercare.accounts import signin, totp
from aftercare.console.account_pages import SETUP_KEY, qr_data_uri
from aftercare.console.context import aftercare_app
from aftercare.console.forms import CodeForm, SignInForm
from aftercare.console.guard import safe_next

# The password step is good for this long while the code is entered.
PENDING_FOR = timedelta(minutes=5)

Page = str | Response | tuple[str, int]


def login() -> Page:
    if isinstance(cookie.get("signin"), str):
        return redirect(safe_next(request.args.get("next")))
    form = SignInForm()
    if not form.validate_on_submit():
        return render_template("console/login.html", form=form), 400 if form.errors else 200
    app = aftercare_app()
    now = app.clock.now()
    address = request.remote_addr or "unknown"
    result = signin.check_password(
        app.sessions, form.email.data or "", form.password.data or "", address, now
    )
    if isinstance(result, signin.Refused):
        form.form_errors.append(result.message)
        return render_template("console/login.html", form=form), 429 if result.throttled else 401
    next_path = safe_next(request.args.get("next"))
    if result.second_factor is None:
        return _signed_in(result.account.id, next_path)
    cookie.clear()
    cookie["pending"] = {"staff_id": result.account.id, "at": now.isoformat(), "next": next_path}
    endpoint = "console.login_code" if result.second_factor == "code" else "console.login_setup"
    return redirect(url_for(endpoint))


def login_code() -> Page:
    staff_id = _pending()
    if staff_id is None:
        return redirect(url_for("console.login"))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("console/login_code.html", form=form), 400 if form.errors else 200
    app = aftercare_app()
    address = request.remote_addr or "unknown"
    result = signin.check_code(
        app.sessions, staff_id, form.code.data or "", address, app.clock.now()
    )
    if isinstance(result, signin.Refused):
        form.code.errors = [result.message]
        return render_template(
            "console/login_code.html", form=form
        ), 429 if result.throttled else 401
    return _signed_in(result.id, cookie["pending"]["next"])


def login_setup() -> Page:
    """Two-factor is required and the account has none yet: set it up, then go on."""
    staff_id = _pending()
    if staff_id is None:
        return redirect(url_for("console.login"))
    app = aftercare_app()
    secret = cookie.setdefault(SETUP_KEY, pyotp.random_base32())
    form = CodeForm()
    if form.validate_on_submit():
        now = app.clock.now()
        if totp.turn_on(app.sessions, staff_id, secret, form.code.data or "", None, now):
            return _signed_in(staff_id, cookie["pending"]["next"])
        form.code.errors = [signin.WRONG_CODE]
    email = totp.account_email(app.sessions, staff_id)
    return render_template(
        "console/login_setup.html",
        form=form,
        secret=secret,
        qr=qr_data_uri(totp.provisioning_uri(secret, email, app.settings.clinic_name)),
    ), 400 if form.errors else 200


def logout() -> Response:
    app = aftercare_app()
    token = cookie.get("signin")
    if isinstance(token, str):
        signin.sign_out(app.sessions, token, app.clock.now())
    cookie.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("console.login"))


def _signed_in(staff_id: int, next_path: str) -> Response:
    app = aftercare_app()
    token = signin.begin(app.sessions, staff_id, request.remote_addr or "unknown", app.clock.now())
    cookie.clear()  # nothing from before signing in carries over (session fixation)
    cookie["signin"] = token
    return redirect(next_path)


def _pending() -> int | None:
    pending = cookie.get("pending")
    if not isinstance(pending, dict):
        return None
    started = datetime.fromisoformat(pending["at"])
    if aftercare_app().clock.now() - started > PENDING_FOR:
        cookie.clear()
        flash("That took too long; sign in again.", "warning")
        return None
    return int(pending["staff_id"])
