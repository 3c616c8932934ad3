"""The compliance lint: concise texts that name the clinic, its phone and STOP, not too often."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import time
from pathlib import Path

import pytest

from aftercare import gsm
from aftercare.config import QuietHours
from aftercare.render import Clinic
from aftercare.schedules.lint import Finding, lint
from aftercare.schedules.load import Catalog, load_timeline
from aftercare.schedules.model import Timeline

CLINIC = Clinic("Spine Care Clinic", "+1 555 010 0199")
QUIET = QuietHours(time(21, 0), time(8, 0))
GOOD = "{{ clinic_name }}: Keep the bandage on. Call {{ clinic_phone }}. STOP to end"
# Renders to 39 GSM-7 characters with CLINIC; tests add filler to reach an exact length.
PREFIX = "{{ clinic_name }} {{ clinic_phone }} STOP "

MakeTimeline = Callable[..., Timeline]


@pytest.fixture
def timeline_with(tmp_path: Path) -> MakeTimeline:
    """Factory: an English SMS-only timeline of the given ``(at, text)`` steps."""

    def make(*steps: tuple[str, str]) -> Timeline:
        lines = ["name: test", "title: Test", "version: 1", "languages: [en]", "steps:"]
        for number, (at, text) in enumerate(steps):
            lines += [
                f"  - id: step-{number}",
                f"    at: {at!r}",
                "    channels: [sms]",
                f"    sms: {{en: {json.dumps(text, ensure_ascii=False)}}}",
            ]
        path = tmp_path / "test.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return load_timeline(path)

    return make


def messages(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.level, f.message) for f in findings]


# --- the built-in timelines ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["kyphoplasty", "vertebroplasty"])
def test_the_builtin_timelines_pass_in_both_languages(name: str) -> None:
    timeline = Catalog.default().get(name)

    assert timeline.languages == ("en", "es")
    assert lint(timeline, CLINIC, QUIET) == []


def test_the_builtin_timelines_pass_for_a_clinic_name_with_accents() -> None:
    # SMS are folded to GSM-7 ("Clínica" -> "Clinica"); the lint must look for the folded name.
    clinic = Clinic("Clínica San José", "+34 911 23 45 67")

    assert lint(Catalog.default().get("kyphoplasty"), clinic, QUIET) == []


# --- one text --------------------------------------------------------------------------------


def test_a_text_that_names_clinic_phone_and_stop_passes(timeline_with: MakeTimeline) -> None:
    assert lint(timeline_with(("+2h", GOOD)), CLINIC, QUIET) == []


def test_a_text_of_160_characters_passes(timeline_with: MakeTimeline) -> None:
    assert lint(timeline_with(("+2h", PREFIX + "a" * 121)), CLINIC, QUIET) == []


def test_a_text_over_160_gsm_characters_is_an_error(timeline_with: MakeTimeline) -> None:
    findings = lint(timeline_with(("+2h", PREFIX + "a" * 122)), CLINIC, QUIET)

    assert messages(findings) == [
        ("error", "step step-0 [en] sms: 161 GSM-7 characters, more than 160")
    ]


def test_a_euro_sign_counts_two_characters(timeline_with: MakeTimeline) -> None:
    findings = lint(timeline_with(("+2h", PREFIX + "a" * 120 + "€")), CLINIC, QUIET)

    assert messages(findings) == [
        ("error", "step step-0 [en] sms: 161 GSM-7 characters, more than 160")
    ]


def test_the_length_counts_a_long_first_name(timeline_with: MakeTimeline) -> None:
    # "{{ first_name }}" renders as an 11-letter sample name, not as its 16 template characters.
    text = PREFIX + "{{ first_name }}" + "a" * 111

    findings = lint(timeline_with(("+2h", text)), CLINIC, QUIET)

    assert messages(findings) == [
        ("error", "step step-0 [en] sms: 161 GSM-7 characters, more than 160")
    ]


def test_an_emoji_gets_a_ucs2_warning(timeline_with: MakeTimeline) -> None:
    findings = lint(
        timeline_with(("+2h", "{{ clinic_name }} {{ clinic_phone }} STOP 🙂")), CLINIC, QUIET
    )

    assert messages(findings) == [
        (
            "warning",
            "step step-0 [en] sms: '🙂' force UCS-2 encoding (70 characters a part)",
        )
    ]


def test_a_ucs2_text_over_70_characters_is_an_error_as_it_would_never_be_sent(
    timeline_with: MakeTimeline,
) -> None:
    findings = lint(timeline_with(("+2h", GOOD + " 🙂")), CLINIC, QUIET)

    assert messages(findings) == [
        (
            "error",
            "step step-0 [en] sms: 76 characters in UCS-2, more than 70: it would not be sent",
        ),
        (
            "warning",
            "step step-0 [en] sms: '🙂' force UCS-2 encoding (70 characters a part)",
        ),
    ]


def test_accents_that_fold_to_gsm_get_no_warning(timeline_with: MakeTimeline) -> None:
    assert lint(timeline_with(("+2h", GOOD + " Está bien.")), CLINIC, QUIET) == []


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        (
            "Keep the bandage on. Call {{ clinic_phone }}. STOP to end",
            "does not name the clinic ({{ clinic_name }})",
        ),
        (
            "{{ clinic_name }}: Keep the bandage on. STOP to end",
            "does not give the clinic's phone ({{ clinic_phone }})",
        ),
        (
            "{{ clinic_name }}: Keep the bandage on. Call {{ clinic_phone }}.",
            "does not say how to opt out (reply STOP)",
        ),
    ],
    ids=["without the clinic name", "without the phone", "without STOP"],
)
def test_a_text_without_a_required_part_is_an_error(
    timeline_with: MakeTimeline, text: str, missing: str
) -> None:
    findings = lint(timeline_with(("+2h", text)), CLINIC, QUIET)

    assert messages(findings) == [("error", f"step step-0 [en] sms: {missing}")]


def test_a_lower_case_stop_is_not_an_opt_out_instruction(timeline_with: MakeTimeline) -> None:
    text = "{{ clinic_name }}: Stop by {{ clinic_phone }} any time"

    assert messages(lint(timeline_with(("+2h", text)), CLINIC, QUIET)) == [
        ("error", "step step-0 [en] sms: does not say how to opt out (reply STOP)")
    ]


@pytest.mark.parametrize(
    ("words", "reported"),
    [
        ("your fracture", "fracture"),
        ("your osteoporosis", "osteoporosis"),
        ("the tumor", "tumor"),
        ("your Fractures", "fractures"),
        ("la compresión", "compresion"),
    ],
)
def test_a_diagnosis_word_gets_a_warning(
    timeline_with: MakeTimeline, words: str, reported: str
) -> None:
    text = f"{{{{ clinic_name }}}}: About {words}, call {{{{ clinic_phone }}}}. STOP to end"

    findings = lint(timeline_with(("+2h", text)), CLINIC, QUIET)

    assert messages(findings) == [
        (
            "warning",
            f"step step-0 [en] sms: mentions {reported!r}; keep diagnoses out of texts",
        )
    ]


def test_a_finding_names_the_file_and_line_of_its_step(timeline_with: MakeTimeline) -> None:
    timeline = timeline_with(("+2h", GOOD), ("day 3 10:00", "no clinic"))

    [finding, *_] = lint(timeline, CLINIC, QUIET)

    assert str(finding) == (
        f"{timeline.source}:10: error: step step-1 [en] sms: does not name the clinic "
        "({{ clinic_name }})"
    )


# --- how often -------------------------------------------------------------------------------


def test_two_texts_on_the_same_local_day_are_an_error(timeline_with: MakeTimeline) -> None:
    timeline = timeline_with(("day 2 09:00", GOOD), ("day 2 15:00", GOOD))

    [finding] = lint(timeline, CLINIC, QUIET)

    assert finding.level == "error"
    assert finding.message.startswith("more than 1 SMS a day for a patient discharged ")


def test_four_texts_in_seven_days_are_an_error(timeline_with: MakeTimeline) -> None:
    timeline = timeline_with(
        ("day 1 10:00", GOOD), ("day 3 10:00", GOOD), ("day 5 10:00", GOOD), ("day 7 10:00", GOOD)
    )

    [finding] = lint(timeline, CLINIC, QUIET)

    assert finding.level == "error"
    assert finding.message.startswith("more than 3 SMS in 7 days for a patient discharged ")


def test_three_texts_in_seven_days_and_one_a_week_after_pass(timeline_with: MakeTimeline) -> None:
    timeline = timeline_with(
        ("day 1 10:00", GOOD), ("day 3 10:00", GOOD), ("day 5 10:00", GOOD), ("day 8 10:00", GOOD)
    )

    assert lint(timeline, CLINIC, QUIET) == []


def test_a_text_deferred_by_quiet_hours_counts_on_the_day_it_is_sent(
    timeline_with: MakeTimeline,
) -> None:
    # 22:00 on day 0 is inside quiet hours: it goes out at 08:00 on day 1, beside "day 1 10:00".
    timeline = timeline_with(("day 0 22:00", GOOD), ("day 1 10:00", GOOD))

    assert lint(timeline, CLINIC, None) == []
    [finding] = lint(timeline, CLINIC, QUIET)
    assert finding.message.startswith("more than 1 SMS a day")


# --- GSM-7 -----------------------------------------------------------------------------------


def test_fold_keeps_the_spanish_letters_gsm7_has() -> None:
    assert gsm.fold("¿Qué tal? ¡Señor Müller!") == "¿Qué tal? ¡Señor Müller!"


def test_fold_drops_accents_gsm7_lacks() -> None:
    assert gsm.fold("á í ó ú Á Í Ó Ú") == "a i o u A I O U"


def test_fold_replaces_typographic_quotes_and_dashes() -> None:
    assert gsm.fold("“Don’t” – wait…") == '"Don\'t" - wait...'


def test_fold_joins_a_decomposed_accent_before_folding() -> None:
    # "e" followed by a combining acute accent is é, which GSM-7 has.
    assert gsm.fold("Jose\u0301") == "José"


def test_fold_keeps_what_it_cannot_replace() -> None:
    assert gsm.fold("ok 🙂") == "ok 🙂"


def test_gsm_length_counts_extension_characters_twice() -> None:
    assert gsm.gsm_length("€5") == 3
    assert gsm.gsm_length("[a]") == 5
    assert gsm.gsm_length("señor") == 5


def test_non_gsm_characters_lists_each_once_in_order() -> None:
    assert gsm.non_gsm_characters("¿Qué? 🙂 á 🙂 ñ") == ["🙂", "á"]


def test_non_gsm_characters_is_empty_for_gsm_text() -> None:
    assert gsm.non_gsm_characters("¡Hola! é ñ ü ¿ € {}") == []
