"""Every console request passes here: signed in (or on a public page), CSRF-checked when it
changes something, allowed by its role, and answered with the console's security headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask import session as cookie  # the signed cookie, not a database session
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError

from aftercare.accounts import signin
from aftercare.accounts.roles import may
from aftercare.console.audit import audit_action
from aftercare.console.context import aftercare_app, signed_in
from aftercare.errors import NotFoundError
from aftercare.statuses import EventKind, StaffRole

PUBLIC = {"console.login", "console.login_code", "console.login_setup", "console.static"}
# A request carrying this header is a page refreshing itself (htmx polling), not a person:
# it must not keep a sign-in alive, or an open worklist would never time out.
BACKGROUND_HEADER = "X-Aftercare-Background"
ENDED = {
    "idle": "You were signed out after {idle} without activity. Sign in again to go on.",
    "expired": "Your sign-in reached its time limit. Sign in again to go on.",
    "disabled": "This account has been disabled.",
}
# No inline script or style anywhere; htmx is served from here; nothing may frame the console.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

View = TypeVar("View", bound=Callable[..., Any])


def check_request() -> Response | None:
    """The blueprint's before_request: CSRF on every POST, then the sign-in."""
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as exc:
            raise CSRFError(str(exc)) from None
    if request.endpoint in PUBLIC:
        return None
    return _load_signin()


def _load_signin() -> Response | None:
    app = aftercare_app()
    token = cookie.get("signin")
    state: signin.Current | str = "signed out"
    if isinstance(token, str):
        settings = app.settings
        background = request.headers.get(BACKGROUND_HEADER) == "1"
        state = signin.current(
            app.sessions,
            token,
            app.clock.now(),
            settings.session_idle,
            settings.session_lifetime,
            active=not background,
        )
    if isinstance(state, signin.Current):
        g.staff, g.signin_id = state.account, state.signin_id
        return None
    return _to_login(state)


def _to_login(reason: str) -> Response:
    cookie.pop("signin", None)  # a sign-in half done (the code still to enter) stays
    if reason in ENDED:
        idle = _span(aftercare_app().settings.session_idle.total_seconds())
        flash(ENDED[reason].format(idle=idle), "warning")
    target = url_for("console.login", next=_here())
    response = redirect(target)
    if request.headers.get("HX-Request"):
        # htmx would follow a redirect inside the page; this makes it load the sign-in page.
        response = Response(status=204, headers={"HX-Redirect": target})
    return response


def _here() -> str | None:
    if request.method != "GET" or request.path == "/":
        return None
    return request.full_path.rstrip("?")


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 60 or minutes * 60 != seconds:
        return f"{int(seconds)} seconds"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def requires(role: StaffRole) -> Callable[[View], View]:
    """The view needs at least ``role``; anyone else gets 403, and the attempt is audited."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            account = signed_in()
            if not may(account.role, role):
                audit_action(
                    EventKind.FORBIDDEN,
                    page=request.endpoint,
                    method=request.method,
                    role=account.role,
                    needs=role.value,
                )
                g.needed_role = role
                abort(403)
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.endpoint != "console.static":
        # Pages show patient data: no copy of them stays in a shared tablet's cache.
        headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    return render_template(
        "console/error.html", code=code, error=error, needed=g.get("needed_role")
    ), code


def not_found(error: NotFoundError) -> tuple[str, int]:
    """An id in the URL that names nothing (a staff account, a patient): the 404 page."""
    return error_page(NotFound())


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return url_for("console.worklist")
