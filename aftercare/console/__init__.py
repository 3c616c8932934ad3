"""The staff console: server-rendered pages for nurses, a Flask blueprint of ``aftercare serve``.

Every page but sign-in needs a signed-in account (``guard.check_request``); views that change
something or manage staff say which role they need with ``guard.requires``. Routes are listed
here, explicitly.
"""

from __future__ import annotations

from flask import Blueprint

from aftercare.console import (
    account_pages,
    enroll,
    guard,
    helpers,
    imports,
    patient,
    roster,
    setup,
    signin_pages,
    staff_pages,
    timelines,
    worklist,
)
from aftercare.errors import NotFoundError

console_bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)
console_bp.record_once(setup.configure)
# Before the guard reads the form (for its CSRF token): an upload may be larger than a webhook.
console_bp.before_request(imports.allow_upload)
console_bp.before_request(guard.check_request)
console_bp.after_request(guard.security_headers)
console_bp.context_processor(setup.template_globals)
console_bp.context_processor(helpers.template_names)
for code in (400, 403, 404, 405, 413):
    console_bp.register_error_handler(code, guard.error_page)
console_bp.register_error_handler(NotFoundError, guard.not_found)

_GET_POST = ["GET", "POST"]
console_bp.add_url_rule("/login", view_func=signin_pages.login, methods=_GET_POST)
console_bp.add_url_rule("/login/code", view_func=signin_pages.login_code, methods=_GET_POST)
console_bp.add_url_rule("/login/setup", view_func=signin_pages.login_setup, methods=_GET_POST)
console_bp.add_url_rule("/logout", view_func=signin_pages.logout, methods=["POST"])
console_bp.add_url_rule("/", view_func=worklist.worklist)
console_bp.add_url_rule(
    "/worklist/<kind>/<int:ref_id>/handled", view_func=worklist.mark_handled, methods=["POST"]
)
# POST too: a search (names, phone digits) travels in the body, never in the URL.
console_bp.add_url_rule("/patients", view_func=roster.patients, methods=_GET_POST)
console_bp.add_url_rule("/patients.csv", view_func=roster.patients_csv, methods=_GET_POST)
console_bp.add_url_rule("/patients/<int:enrollment_id>", view_func=patient.patient)
for action in ("pause", "resume", "cancel", "reschedule", "contact"):
    console_bp.add_url_rule(
        f"/patients/<int:enrollment_id>/{action}",
        endpoint=f"patient_{action}",
        view_func=getattr(patient, f"patient_{action}"),
        methods=["POST"],
    )
console_bp.add_url_rule("/enroll", view_func=enroll.enroll)
console_bp.add_url_rule("/enroll", view_func=enroll.enroll_submit, methods=["POST"])
console_bp.add_url_rule("/import", view_func=imports.import_csv)
console_bp.add_url_rule("/import", view_func=imports.import_upload, methods=["POST"])
console_bp.add_url_rule("/import/confirm", view_func=imports.import_confirm, methods=["POST"])
console_bp.add_url_rule("/timelines", view_func=timelines.timelines)
console_bp.add_url_rule("/account", view_func=account_pages.account)
console_bp.add_url_rule(
    "/account/two-factor/on",
    "account_two_factor_on",
    view_func=account_pages.two_factor_on,
    methods=["POST"],
)
console_bp.add_url_rule(
    "/account/two-factor/off",
    "account_two_factor_off",
    view_func=account_pages.two_factor_off,
    methods=["POST"],
)
console_bp.add_url_rule("/staff", view_func=staff_pages.staff_list)
console_bp.add_url_rule("/staff", view_func=staff_pages.staff_add, methods=["POST"])
console_bp.add_url_rule(
    "/staff/<int:staff_id>/disable", view_func=staff_pages.staff_disable, methods=["POST"]
)
console_bp.add_url_rule(
    "/staff/<int:staff_id>/enable", view_func=staff_pages.staff_enable, methods=["POST"]
)
console_bp.add_url_rule(
    "/staff/<int:staff_id>/password", view_func=staff_pages.staff_password, methods=_GET_POST
)
console_bp.add_url_rule(
    "/staff/two-factor", view_func=staff_pages.staff_two_factor, methods=["POST"]
)

__all__ = ["console_bp"]
