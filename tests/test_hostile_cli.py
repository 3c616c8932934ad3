"""``enroll`` and ``preview`` with hostile values in every field: one line naming the flag and
exit code 1 (2 for a usage error), or a correct result; never a traceback, and a refused enroll
writes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from aftercare.cli import cli
from tests.conftest import NOW, CliRun
from tests.strategies import (
    HOSTILE,
    LEGITIMATE_NAMES,
    formula_cell,
    legitimate_name,
    name_with_control,
    nasty_text,
    near_a_dst_change,
    sqlite_only,
)

RowCounts = Callable[[], dict[str, int]]
EnrollArgs = Callable[..., list[str]]
ENROLL_FLAGS = (
    "first-name",
    "phone",
    "email",
    "tz",
    "procedure",
    "discharged-at",
    "language",
    "channels",
    "external-id",
)
# Lone surrogates: what Python makes of terminal bytes that are not UTF-8.
undecodable = st.builds(
    lambda head, bad: head + bad,
    st.sampled_from(["", "Ana", "+1202"]),
    st.sampled_from(["\udcff", "\udce9", "\udc80"]),
)


def assert_one_clear_line(result_output: str, flag: str) -> None:
    (line,) = result_output.splitlines()
    assert line.startswith((f"error: --{flag}: ", f"Error: --{flag}: ", "error: procedure: ")), line


@sqlite_only
@HOSTILE
@given(flag=st.sampled_from(ENROLL_FLAGS), value=st.one_of(nasty_text, formula_cell))
def test_a_hostile_enroll_field_is_refused_naming_the_flag_or_enrolled_correctly(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts, flag: str, value: str
) -> None:
    before = row_counts()
    # A patient of their own per example (examples share the database, and a patient on file
    # keeps their details): only the hostile field can be what is refused.
    tag = uuid.uuid4().hex[:8]
    own = {"first-name": f"Ana {tag}"} if flag == "external-id" else {"external-id": f"MRN-{tag}"}

    result = run(*enroll_args(**own | {flag: value}), "--json")

    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 0:
        enrolled = json.loads(result.stdout)
        assert enrolled["id"] >= 1
        if flag == "first-name":
            assert enrolled["first_name"] == " ".join(value.split())
    else:
        assert result.stdout == ""
        # Click reports an argument it cannot parse (a value starting with "-") by its own name.
        if not value.startswith("-"):
            assert_one_clear_line(result.stderr, flag)
        assert row_counts() == before


@sqlite_only
@HOSTILE
@given(flag=st.sampled_from(ENROLL_FLAGS), value=undecodable)
def test_bytes_of_another_encoding_in_any_flag_are_a_usage_error(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts, flag: str, value: str
) -> None:
    before = row_counts()

    result = run(*enroll_args(**{flag: value}))

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: --{flag}: is not valid text (bytes of another encoding?)"
    )
    assert row_counts() == before


@sqlite_only
@HOSTILE
@given(name=name_with_control)
def test_a_first_name_with_control_or_bidi_characters_is_refused(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts, name: str
) -> None:
    before = row_counts()

    result = run(*enroll_args(first_name=name))

    assert result.exit_code == 1
    assert result.stderr in (
        "error: --first-name: contains control characters or markup\n",
        "error: --first-name: is empty\n",
    )
    assert row_counts() == before


@sqlite_only
@HOSTILE
@given(name=legitimate_name)
def test_a_name_in_any_script_is_enrolled_and_listed_verbatim(
    run: CliRun, enroll_args: EnrollArgs, name: str
) -> None:
    mrn = f"MRN-{LEGITIMATE_NAMES.index(name)}"

    result = run(*enroll_args(first_name=name, external_id=mrn), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["first_name"] == name
    listed = {r["first_name"] for r in json.loads(run("patients", "list", "--json").stdout)}
    assert name in listed
    assert run("patients", "list").exit_code == 0  # the table prints it too


def test_a_bidi_override_in_a_stored_reason_is_shown_as_a_code_in_tables(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    # A reason is free text for the audit trail; on the terminal it must not reorder the
    # table around it (nor run an escape sequence).
    run(*enroll_args())
    assert run("pause", "1", "--reason", "asked \u202eevil\x1b[2J").exit_code == 0

    shown = run("patients", "show", "1").stdout
    as_json = json.loads(run("patients", "show", "1", "--json").stdout)

    assert "\u202e" not in shown and "\x1b" not in shown
    assert "asked \\u202eevil\\x1b[2J" in shown
    assert as_json["status_reason"] == "asked \u202eevil\x1b[2J"  # JSON keeps it verbatim


@sqlite_only
@HOSTILE
@given(where=near_a_dst_change(NOW))
def test_a_discharge_next_to_a_dst_change_plans_messages_that_exist_in_local_time(
    run: CliRun, where: tuple[str, datetime]
) -> None:
    zone, at = where
    local = at.astimezone(ZoneInfo(zone))

    result = run(
        "preview",
        "kyphoplasty",
        "--discharged-at",
        local.isoformat(timespec="minutes"),
        "--tz",
        zone,
        "--json",
    )

    assert result.exit_code == 0, result.output
    messages = json.loads(result.stdout)
    assert messages
    tz = ZoneInfo(zone)
    dues = [datetime.fromisoformat(m["due_at"]) for m in messages]
    assert all(due.tzinfo is not None and due >= at for due in dues)
    # At most one SMS a patient-local day, whatever the clocks did that night.
    sms_days = [
        due.astimezone(tz).date()
        for due, m in zip(dues, messages, strict=True)
        if m["channel"] == "sms"
    ]
    assert len(sms_days) == len(set(sms_days))


@sqlite_only
@HOSTILE
@given(where=near_a_dst_change(NOW))
def test_enrolling_next_to_a_dst_change_gives_the_same_plan_as_the_preview(
    run: CliRun, enroll_args: EnrollArgs, where: tuple[str, datetime]
) -> None:
    zone, at = where
    when = at.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")
    preview = json.loads(
        run(
            "preview",
            "kyphoplasty",
            "--discharged-at",
            when,
            "--tz",
            zone,
            "--channels",
            "sms",
            "--json",
        ).stdout
    )

    # A patient of their own per example: one is enrolled in a procedure once at a time.
    mrn = f"MRN-{uuid.uuid4().hex[:12]}"
    result = run(
        *enroll_args(tz=zone, discharged_at=when, channels="sms", external_id=mrn), "--json"
    )

    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.stdout)["messages"]
    assert sorted((m["step"], m["occurrence"], m["due_at"]) for m in enrolled) == sorted(
        (m["step"], m["occurrence"], m["due_at"]) for m in preview
    )


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59+00:00",
        "0001-01-01T00:00+14:00",
        "0001-01-01T00:00-14:00",
        (NOW + timedelta(days=3700)).isoformat(),
    ],
)
def test_a_preview_far_outside_the_calendar_is_a_clear_error(run: CliRun, when: str) -> None:
    result = run("preview", "kyphoplasty", "--discharged-at", when, "--tz", "Pacific/Kiritimati")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --discharged-at: ")
    assert result.stderr.count("\n") == 1


@sqlite_only
@HOSTILE
@given(
    flag=st.sampled_from(["tz", "discharged-at", "language", "first-name", "channels"]),
    value=st.one_of(nasty_text, formula_cell),
)
def test_a_hostile_preview_field_is_a_clear_error_or_a_preview(
    run: CliRun, row_counts: RowCounts, flag: str, value: str
) -> None:
    args = {
        "tz": "America/Chicago",
        "discharged-at": "2026-11-23T10:30-06:00",
    } | {flag: value}
    before = row_counts()

    result = run("preview", "kyphoplasty", *(x for k, v in args.items() for x in (f"--{k}", v)))

    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 1:
        assert_one_clear_line(result.stderr, flag)
    assert row_counts() == before  # a preview never writes


@pytest.mark.parametrize(
    ("actor", "says"),
    [
        ("x" * 59, "error: --as: is longer than 58 characters"),
        ("ops\x1b[2J", "error: --as: contains control characters"),
        ("   ", "error: --as: is empty"),
    ],
)
def test_an_unusable_actor_name_is_refused_before_anything_is_written(
    db_url: str, enroll_args: EnrollArgs, actor: str, says: str
) -> None:
    # Event.actor holds 64 characters: on PostgreSQL a longer --as failed the enroll with a
    # database traceback after validating everything else.
    now = datetime.now(UTC).isoformat(timespec="minutes")
    args = ["--database-url", db_url, "--as", actor, *enroll_args(discharged_at=now)]

    result = CliRunner().invoke(cli, args, catch_exceptions=False)

    assert result.exit_code == 1
    assert result.stderr == says + "\n"


def test_a_long_but_valid_actor_name_is_recorded(db_url: str, enroll_args: EnrollArgs) -> None:
    now = datetime.now(UTC).isoformat(timespec="minutes")
    args = ["--database-url", db_url, "--as", "é" * 58, *enroll_args(discharged_at=now)]

    assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
    shown = CliRunner().invoke(cli, ["--database-url", db_url, "patients", "show", "1", "--json"])
    assert {e["actor"] for e in json.loads(shown.stdout)["history"]} == {"staff:" + "é" * 58}
