from __future__ import annotations

from aftercare.tokens import Unsubscribe, make_token, read_token

SECRET = "a-secret-of-sufficient-length"


def test_a_token_names_the_patient_and_channel_it_was_made_for() -> None:
    token = make_token(SECRET, 42, "email")
    assert read_token(SECRET, token) == Unsubscribe(42, "email")


def test_a_token_cannot_be_forged_for_another_patient_or_channel() -> None:
    token = make_token(SECRET, 42, "email")
    signature = token.rsplit(".", 1)[1]
    assert read_token(SECRET, f"43.email.{signature}") is None
    assert read_token(SECRET, f"42.sms.{signature}") is None


def test_a_token_made_with_another_secret_is_refused() -> None:
    assert read_token(SECRET, make_token("another-secret-of-length", 42, "email")) is None


def test_garbage_is_refused_without_an_error() -> None:
    for junk in (
        "",
        ".",
        "a.b.c",
        "42.email",
        "42.email.",
        "x" * 500,
        "42.fax.abc",
        "💥.email.x",
        "42.email.é",
        "٤٢.email.x",
    ):
        assert read_token(SECRET, junk) is None
