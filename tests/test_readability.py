"""Reading grade: plain words score low and the guide's clinical prose high, in both languages."""

from __future__ import annotations

import pytest

from aftercare.schedules.readability import GRADE_TARGET, reading_grade

# The patient guide's own sentence: what a clinic would write without thinking of the reader.
GUIDE_EN = (
    "Kyphoplasty and vertebroplasty are generally reserved for people with painful progressive "
    "back pain caused by osteoporotic or pathological vertebral compression fractures."
)
GUIDE_ES = (
    "La cifoplastia y la vertebroplastia generalmente se reservan para personas con dolor de "
    "espalda progresivo causado por fracturas vertebrales osteoporóticas o patológicas, cuya "
    "capacidad de movimiento y funcionamiento se encuentra considerablemente disminuida."
)


def test_short_plain_sentences_are_below_grade_six_in_english() -> None:
    reading = reading_grade("Keep the bandage on for two days. Take showers, not baths.", "en")

    assert reading.sentences == 2
    assert reading.words == 11
    assert reading.grade <= GRADE_TARGET


def test_clinical_prose_is_well_above_grade_six_in_english() -> None:
    assert reading_grade(GUIDE_EN, "en").grade > 12


def test_short_plain_sentences_are_below_grade_six_in_spanish() -> None:
    reading = reading_grade("No se quite el vendaje por 2 días. Use la regadera, no la tina.", "es")

    assert reading.sentences == 2
    assert reading.words == 13  # the number is not a word
    assert reading.grade <= GRADE_TARGET


def test_clinical_prose_is_above_grade_six_in_spanish() -> None:
    assert reading_grade(GUIDE_ES, "es").grade > GRADE_TARGET


@pytest.mark.parametrize(
    ("word", "syllables"),
    [("día", 2), ("fiebre", 2), ("aguja", 3), ("que", 1), ("guerra", 2), ("leer", 2)],
)
def test_spanish_syllables_follow_diphthongs_hiatus_and_the_silent_u(
    word: str, syllables: int
) -> None:
    assert reading_grade(f"{word}.", "es").syllables == syllables


@pytest.mark.parametrize(
    ("word", "syllables"), [("take", 1), ("table", 2), ("called", 1), ("needed", 2), ("the", 1)]
)
def test_english_syllables_drop_the_silent_e_and_ed(word: str, syllables: int) -> None:
    assert reading_grade(f"{word}.", "en").syllables == syllables


def test_list_items_and_paragraphs_are_sentences_and_wrapped_lines_are_not() -> None:
    email = (
        "Hello Ana,\n\nCall us if you have:\n- a fever;\n- bleeding where the needle\n"
        "  went in;\n\nSpine Care Clinic\n+1 555 010 0199\n"
    )

    reading = reading_grade(email, "en", ignore=("Spine Care Clinic", "+1 555 010 0199", "Ana"))

    assert reading.sentences == 4  # hello, the lead-in, two items; the signature is ignored
    assert reading.words == 14


def test_a_text_of_no_words_has_grade_zero() -> None:
    assert reading_grade("+1 555 010 0199", "en").grade == 0
