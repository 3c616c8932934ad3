"""A clinic's own timelines in AFTERCARE_SCHEDULES_DIR: they extend a built-in base, and one
broken file never stops the others."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aftercare.app import App
from aftercare.config import Settings
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


def test_patients_enrolled_before_a_file_broke_keep_the_version_they_were_planned_with(
    run: CliRun, folder: Path, enroll_args, restarted: Callable[[], CliRun]
) -> None:
    own = folder / "kyphoplasty-north.yaml"
    own.write_text(OWN, encoding="utf-8")
    run(*enroll_args(procedure="kyphoplasty-north", **{"discharged-at": "2026-11-23T08:00-06:00"}))
    own.write_text(OWN.replace("steps:", "steps: ["), encoding="utf-8")  # a clinic's bad edit

    result = restarted()("run", "--once", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "timeline unavailable: " in result.stderr  # reported, and still sent:
    assert "Keep the bandage on 2 days" in result.stdout


def test_patients_enrolled_before_a_new_version_keep_the_one_they_were_planned_with(
    run: CliRun, folder: Path, enroll_args, restarted: Callable[[], CliRun]
) -> None:
    own = folder / "kyphoplasty-north.yaml"
    own.write_text(OWN, encoding="utf-8")
    run(*enroll_args(procedure="kyphoplasty-north", **{"discharged-at": "2026-11-23T08:00-06:00"}))
    newer = OWN.replace("version: 1", "version: 2").replace(
        "  - id: six-weeks",
        "  - id: welcome-home\n    sms:\n"
        '      en: "{{ clinic_name }}: Version two. {{ clinic_phone }}. Reply STOP to opt out"\n'
        '      es: "{{ clinic_name }}: Versión dos. {{ clinic_phone }}. STOP para cancelar"\n'
        "  - id: six-weeks",
    )
    own.write_text(newer, encoding="utf-8")

    result = restarted()("run", "--once", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Keep the bandage on 2 days" in result.stdout
    assert "Version two" not in result.stdout


@pytest.fixture
def restarted(settings: Settings, clock) -> Iterator[Callable[[], CliRun]]:
    """The CLI of a new process: it reads the timeline files again."""
    apps: list[App] = []

    def make() -> CliRun:
        apps.append(App(settings, clock, actor="staff:test"))
        return CliRun(apps[-1])

    yield make
    for app in apps:
        app.close()
