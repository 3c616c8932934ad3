"""The console's forms (WTForms through Flask-WTF, so each carries its CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # 3.3; stubs lag
from wtforms.validators import InputRequired, Length

from aftercare.statuses import StaffRole

ROLE_CHOICES = [
    SelectChoice(StaffRole.VIEWER.value, "Viewer — reads"),
    SelectChoice(StaffRole.NURSE.value, "Nurse — enrolls and acts on patients"),
    SelectChoice(StaffRole.ADMIN.value, "Admin — also manages staff"),
]


class SignInForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[InputRequired("Enter your email."), Length(max=254)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Sign in")


class CodeForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[InputRequired("Enter the 6-digit code."), Length(max=12)],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autofocus": True,
        },
    )
    submit = SubmitField("Verify")


class StaffForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired("Enter an email.")])
    name = StringField("Name", validators=[InputRequired("Enter a name.")])
    role = SelectField("Role", choices=ROLE_CHOICES, default=StaffRole.NURSE.value)
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter a password.")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Add account")


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[InputRequired("Enter a password.")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Set password")


class ButtonForm(FlaskForm):
    """A form that is only a button (and its CSRF token)."""
