"""The content lint: private email subjects, a reading grade, each audience's texts counted."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

from aftercare.config import QuietHours
from aftercare.render import Clinic
from aftercare.schedules.lint import grades, lint
from aftercare.schedules.load import Catalog, load_timeline
from aftercare.schedules.model import Timeline
from tests.conftest import CliRun

CLINIC = Clinic("Spine Care Clinic", "+1 555 010 0199")
QUIET = QuietHours(time(21, 0), time(8, 0))
SMS = "{{ clinic_name }}: Keep the bandage on. Call {{ clinic_phone }}. Reply STOP to opt out"
HARD = (
    "{{ clinic_name }}: Postprocedural discomfort necessitates immediate communication "
    "regarding complications. {{ clinic_phone }}. STOP"
)


def timeline(tmp_path: Path, *steps: str) -> Timeline:
    path = tmp_path / "hip.yaml"
    path.write_text(
        "name: hip\ntitle: {en: hip replacement}\nversion: 1\nlanguages: [en]\nsteps:\n"
        + "".join(steps),
        encoding="utf-8",
    )
    return load_timeline(path)


def email_step(subject: str) -> str:
    return (
        f"  - id: welcome\n    at: '+2h'\n    channels: [email]\n"
        f"    email: {{subject: {{en: {json.dumps(subject)}}}, body: {{en: 'Rest well.'}}}}\n"
    )


def sms_step(step_id: str, at: str, text: str, audience: str = "[patient]") -> str:
    return (
        f"  - id: {step_id}\n    at: {at!r}\n    channels: [sms]\n    audience: {audience}\n"
        f"    sms: {{en: {json.dumps(text)}}}\n"
    )


def test_an_email_subject_naming_the_procedure_is_a_warning(tmp_path: Path) -> None:
    findings = lint(
        timeline(tmp_path, email_step("After your {{ procedure_title }}")), CLINIC, QUIET
    )

    assert [(f.level, f.message) for f in findings] == [
        (
            "warning",
            "step welcome [en] email subject: mentions 'hip replacement'; "
            "keep procedures and diagnoses out",
        )
    ]


def test_an_email_subject_naming_a_diagnosis_is_a_warning(tmp_path: Path) -> None:
    findings = lint(timeline(tmp_path, email_step("About your fracture")), CLINIC, QUIET)

    assert [f.message for f in findings] == [
        "step welcome [en] email subject: mentions 'fracture'; keep procedures and diagnoses out"
    ]


def test_a_text_above_grade_six_is_a_warning_with_its_grade(tmp_path: Path) -> None:
    findings = lint(timeline(tmp_path, sms_step("hard", "+2h", HARD)), CLINIC, QUIET)

    [finding] = findings
    assert finding.level == "warning"
    assert finding.message.startswith("step hard [en] sms: reads at grade ")
    assert "above grade 6 (shorter sentences, shorter words)" in finding.message


def test_a_caregiver_texted_twice_a_day_is_an_error_naming_the_caregiver(tmp_path: Path) -> None:
    steps = (
        sms_step("first", "+2h", SMS, "[caregiver]"),
        sms_step("second", "+3h", SMS, "[caregiver]"),
    )

    findings = lint(timeline(tmp_path, *steps), CLINIC, QUIET)

    assert [f.level for f in findings] == ["error"]
    assert "more than 1 SMS a day for a patient's caregiver discharged" in findings[0].message


def test_every_builtin_message_reads_at_grade_six_or_below_for_both_audiences() -> None:
    found = [g for t in Catalog.default() for g in grades(t, CLINIC)]

    assert {(g.audience, g.language, g.channel) for g in found} == {
        (audience, language, channel)
        for audience in ("patient", "caregiver")
        for language in ("en", "es")
        for channel in ("sms", "email")
    }
    assert max(g.grade for g in found) <= 6


def test_no_builtin_email_subject_names_the_procedure() -> None:
    for t in Catalog.default():
        for step in t.steps:
            for subject in step.email_subject.values():
                assert "procedure_title" not in subject, (t.name, step.id)


def test_schedules_check_grades_prints_a_grade_per_message(run: CliRun) -> None:
    result = run("schedules", "check", "--grades")

    assert result.exit_code == 0, result.output
    assert "kyphoplasty: reading grade per message (target 6 or below)" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("six-weeks")]
    assert {(r[1], r[2], r[3]) for r in rows} == {
        ("en", "patient", "sms"),
        ("en", "patient", "email"),
        ("es", "patient", "sms"),
        ("es", "patient", "email"),
    }
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_schedules_check_grades_in_json_lists_each_message(run: CliRun) -> None:
    result = run("schedules", "check", "--grades", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first = report["grades"]["kyphoplasty"][0]
    assert set(first) == {"step", "language", "audience", "channel", "grade"}
