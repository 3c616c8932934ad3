"""/staff (admins): the accounts, adding one, disabling, resetting a password, and the switch
that requires two-factor sign-in of everyone. The same functions as ``aftercare staff``."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from aftercare.accounts import service, totp
from aftercare.console.context import actor, aftercare_app, signed_in
from aftercare.console.forms import ButtonForm, NewPasswordForm, StaffForm
from aftercare.console.guard import requires
from aftercare.errors import InputError
from aftercare.statuses import StaffRole

Page = str | Response | tuple[str, int]


@requires(StaffRole.ADMIN)
def staff_list() -> Page:
    return _page(StaffForm())


@requires(StaffRole.ADMIN)
def staff_add() -> Page:
    form = StaffForm()
    if not form.validate_on_submit():
        return _page(form), 400
    app = aftercare_app()
    try:
        account = service.add_staff(
            app.sessions,
            form.email.data or "",
            form.name.data or "",
            form.role.data or "",
            form.password.data or "",
            actor(),
            app.clock.now(),
        )
    except InputError as exc:
        getattr(form, exc.field).errors = [exc.problem]
        return _page(form), 400
    flash(f"Added {account.name} ({account.email}) as {account.role}.", "info")
    return redirect(url_for("console.staff_list"))


@requires(StaffRole.ADMIN)
def staff_disable(staff_id: int) -> Response:
    app = aftercare_app()
    account = service.get_staff(app.sessions, staff_id)
    if account.id == signed_in().id:
        flash("You cannot disable your own account.", "warning")
    else:
        service.disable_staff(app.sessions, account.email, actor(), app.clock.now())
        flash(f"Disabled {account.email}; its sign-ins have ended.", "info")
    return redirect(url_for("console.staff_list"))


@requires(StaffRole.ADMIN)
def staff_enable(staff_id: int) -> Response:
    app = aftercare_app()
    account = service.get_staff(app.sessions, staff_id)
    service.enable_staff(app.sessions, account.email, actor(), app.clock.now())
    flash(f"Enabled {account.email}.", "info")
    return redirect(url_for("console.staff_list"))


@requires(StaffRole.ADMIN)
def staff_password(staff_id: int) -> Page:
    app = aftercare_app()
    account = service.get_staff(app.sessions, staff_id)
    form = NewPasswordForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            service.reset_password(
                app.sessions, account.email, form.password.data or "", actor(), app.clock.now()
            )
        except InputError as exc:
            form.password.errors = [exc.problem]
        else:
            flash(f"New password set for {account.email}; its sign-ins have ended.", "info")
            return redirect(url_for("console.staff_list"))
    status = 400 if form.errors else 200
    return render_template("console/staff_password.html", form=form, account=account), status


@requires(StaffRole.ADMIN)
def staff_two_factor() -> Response:
    app = aftercare_app()
    on = request.form.get("required") == "yes"
    totp.set_required(app.sessions, on, actor(), app.clock.now())
    flash(
        "Two-factor sign-in is now required for everyone."
        if on
        else "Two-factor sign-in is now up to each account.",
        "info",
    )
    return redirect(url_for("console.staff_list"))


def _page(form: StaffForm) -> str:
    app = aftercare_app()
    return render_template(
        "console/staff.html",
        accounts=service.list_staff(app.sessions),
        form=form,
        button=ButtonForm(),
        two_factor_required=totp.required(app.sessions),
        now=app.clock.now(),
    )
