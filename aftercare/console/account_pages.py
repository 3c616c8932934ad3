"""/account: the signed-in person's own two-factor sign-in (turn it on with an authenticator
app, or off unless an admin requires it)."""

from __future__ import annotations

import pyotp
import segno
from flask import flash, redirect, render_template, url_for
from flask import session as cookie  # the signed cookie, not a database session
from werkzeug.wrappers import Response

from aftercare.accounts import service, signin, totp
from aftercare.console.context import actor, aftercare_app, signed_in
from aftercare.console.forms import ButtonForm, CodeForm

Page = str | Response | tuple[str, int]
SETUP_KEY = "new_totp_secret"


def account() -> Page:
    return _page(CodeForm())


def two_factor_on() -> Page:
    app = aftercare_app()
    form = CodeForm()
    secret = cookie.get(SETUP_KEY)
    if form.validate_on_submit() and isinstance(secret, str):
        me = signed_in()
        if totp.turn_on(
            app.sessions, me.id, secret, form.code.data or "", actor(), app.clock.now()
        ):
            cookie.pop(SETUP_KEY, None)
            flash(
                "Two-factor sign-in is on: you will be asked for a code when you sign in.", "info"
            )
            return redirect(url_for("console.account"))
        form.code.errors = [signin.WRONG_CODE]
    return _page(form), 400


def two_factor_off() -> Response:
    app = aftercare_app()
    if totp.required(app.sessions):
        flash(
            "Two-factor sign-in is required for everyone here; it cannot be turned off.", "warning"
        )
    else:
        totp.turn_off(app.sessions, signed_in().id, actor(), app.clock.now())
        flash("Two-factor sign-in is off.", "info")
    return redirect(url_for("console.account"))


def _page(form: CodeForm) -> str:
    app = aftercare_app()
    me = service.get_staff(app.sessions, signed_in().id)
    qr = secret = None
    if not me.two_factor:
        secret = cookie.setdefault(SETUP_KEY, pyotp.random_base32())
        uri = totp.provisioning_uri(secret, me.email, app.settings.clinic_name)
        qr = qr_data_uri(uri)
    return render_template(
        "console/account.html",
        me=me,
        form=form,
        button=ButtonForm(),
        secret=secret,
        qr=qr,
        required=totp.required(app.sessions),
    )


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data: URI (an <img>, so the CSP needs no inline anything)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))
