"""A clinic's own timelines in AFTERCARE_SCHEDULES_DIR: they extend a built-in base, and one
broken file never stops the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from aftercare.app import App
from aftercare.config import Settings
from aftercare.models import Message
from tests.conftest import CliRun

OWN = """\
name: kyphoplasty-north
title: {en: kyphoplasty, es: cifoplastia}
version: 1
extends: _spine-augmentation
steps:
  - id: six-weeks
    sms:
      en: "{{ clinic_name }}: Six weeks! See Dr. Lee. {{ clinic_phone }}. Reply STOP to opt out"
      es: "{{ clinic_name }}: ¡Seis semanas! Vea a Dra. Lee. {{ clinic_phone }}. STOP para cancelar"
  - id: walk-more
    at: "day 18 10:00"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Short walks help. {{ clinic_phone }}. Reply STOP to opt out"
      es: "{{ clinic_name }}: Caminar un poco ayuda. {{ clinic_phone }}. STOP para cancelar"
"""
BROKEN = "name: hip\ntitle: Hip\nsteps: [\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "clinic-timelines"
    path.mkdir()
    return path


@pytest.fixture
def settings(db_url: str, folder: Path) -> Settings:
    return Settings(database_url=db_url, schedules_dir=folder)


def test_a_clinic_file_extends_the_builtin_base_replacing_one_text(
    run: CliRun, folder: Path
) -> None:
    (folder / "kyphoplasty-north.yaml").write_text(OWN, encoding="utf-8")

    result = run("schedules", "show", "kyphoplasty-north", "--json")

    assert result.exit_code == 0, result.output
    steps = {s["id"]: s for s in json.loads(result.stdout)["steps"]}
    assert list(steps)[-1] == "walk-more"
    assert "See Dr. Lee" in steps["six-weeks"]["sms"]["en"]
    # The email was not repeated: it is the base's, and so are the step's time and channels.
    assert steps["six-weeks"]["email_subject"]["en"] == "Six weeks today"
    assert (steps["six-weeks"]["at"], steps["six-weeks"]["channels"]) == (
        "day 42 10:00",
        ["sms", "email"],
    )


def test_a_clinic_file_that_extends_the_base_passes_the_lint(run: CliRun, folder: Path) -> None:
    (folder / "kyphoplasty-north.yaml").write_text(OWN, encoding="utf-8")

    result = run("schedules", "check")

    assert result.exit_code == 0, result.output
    assert "(kyphoplasty-north, 8 steps, en, es)" in result.stdout


def test_a_broken_file_is_reported_and_the_others_are_still_listed(
    run: CliRun, folder: Path
) -> None:
    (folder / "hip.yaml").write_text(BROKEN, encoding="utf-8")

    listed = run("schedules", "list", "--json")
    checked = run("schedules", "check")

    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.stdout)] == ["kyphoplasty", "vertebroplasty"]
    assert "unavailable: " in listed.stderr and "hip.yaml:4: not valid YAML" in listed.stderr
    assert checked.exit_code == 1
    assert "hip.yaml:4: error: not valid YAML" in checked.stderr


def test_a_broken_file_makes_only_its_own_procedure_unavailable_for_enrollment(
    run: CliRun, folder: Path, enroll_args
) -> None:
    (folder / "hip.yaml").write_text(BROKEN, encoding="utf-8")

    refused = run(*enroll_args(procedure="hip"))
    enrolled = run(*enroll_args(procedure="kyphoplasty"))

    assert refused.exit_code == 1
    assert "procedure 'hip' is unavailable: its timeline file has an error" in refused.stderr
    assert enrolled.exit_code == 0, enrolled.output


def test_the_daemon_names_a_broken_file_at_start_and_sends_the_rest(
    run: CliRun, folder: Path, enroll_args
) -> None:
    (folder / "hip.yaml").write_text(BROKEN, encoding="utf-8")
    run(*enroll_args(**{"discharged-at": "2026-11-23T08:00-06:00"}))  # welcome due at 16:00Z

    result = run("run", "--once", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "timeline unavailable: " in result.stderr and "hip.yaml:4" in result.stderr
    assert "Keep the bandage on 2 days" in result.stdout


def test_messages_of_a_timeline_broken_after_enrollment_wait_instead_of_failing(
    run: CliRun, folder: Path, enroll_args, settings: Settings, clock, app: App
) -> None:
    own = folder / "kyphoplasty-north.yaml"
    own.write_text(OWN, encoding="utf-8")
    run(*enroll_args(procedure="kyphoplasty-north", **{"discharged-at": "2026-11-23T08:00-06:00"}))
    own.write_text(OWN.replace("steps:", "steps: ["), encoding="utf-8")  # a clinic's bad edit
    restarted = App(settings, clock, actor="staff:test")  # reads the files again

    result = CliRun(restarted)("run", "--once", "--dry-run")
    restarted.close()

    assert result.exit_code == 0, result.output
    assert "timeline unavailable: " in result.stderr
    with app.sessions() as session:
        welcome = session.scalars(
            select(Message).where(Message.step == "welcome-home", Message.channel == "sms")
        ).one()
        assert (welcome.status, welcome.error_code) == ("pending", "timeline")
