"""Reading grade of a message: how many years of school a reader needs to follow it.

Health-literacy guidance asks for patient material at grade 6 or below. Two published formulas,
one per language, each fitted on school texts of its own language:

* English: Flesch-Kincaid grade level (Kincaid et al., 1975, the US Navy's formula and the one
  most readability guidance quotes): ``0.39 * words/sentences + 11.8 * syllables/words - 15.59``.
* Spanish: Crawford (1985, "A Spanish language Fry-type readability procedure"), the published
  formula that gives a school grade for Spanish (Fernández Huerta and Szigriszt-Pazos give a
  0-100 ease score instead): ``-0.205 * sentences per 100 words + 0.049 * syllables per 100 words
  - 3.407``.

Implemented here rather than taken from ``textstat``: textstat downloads NLTK's CMU dictionary
at run time to count English syllables, and the lint must work offline. Syllables are counted
from vowel groups (Spanish spelling is regular enough for that to be exact but for rare hiatus
words; English uses the usual silent-e corrections), which is what the formulas were fitted with
by hand counting, within a syllable or so per sentence.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

GRADE_TARGET = 6.0
LANGUAGES = ("en", "es")

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A sentence ends at . ! ? (also the Spanish-opening ¿¡ have their closing mark) or a colon or
# semicolon that ends a line: list items and "Call us if:" lead-ins read as sentences.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|[:;](?=\s*$)")
_LIST_ITEM = re.compile(r"^\s*[-*•]\s+")
_EN_VOWELS = re.compile(r"[aeiouy]+")
_ES_VOWELS = re.compile(r"[aeiouáéíóúü]+")
# Spanish: two strong vowels side by side are two syllables (hiatus: "le-er", "dí-a").
_ES_STRONG = set("aeoáéíóú")


@dataclass(frozen=True)
class Reading:
    sentences: int
    words: int
    syllables: int
    grade: float


def reading_grade(text: str, language: str, *, ignore: tuple[str, ...] = ()) -> Reading:
    """The grade of ``text`` in ``language`` (``en`` or ``es``; other languages are scored with
    the English formula). ``ignore`` names strings left out of the count (the clinic's name and
    phone, a sample first name): they are not the writer's words."""
    for part in ignore:
        if part:
            text = text.replace(part, " ")
    sentences = _sentences(text)
    words = [w.lower() for sentence in sentences for w in _WORD.findall(sentence)]
    if not words:
        return Reading(0, 0, 0, 0.0)
    count = _es_syllables if language == "es" else _en_syllables
    syllables = sum(count(w) for w in words)
    n_sentences = max(1, sum(1 for s in sentences if _WORD.search(s)))
    if language == "es":
        grade = (
            -0.205 * (100 * n_sentences / len(words))
            + 0.049 * (100 * syllables / len(words))
            - 3.407
        )
    else:
        grade = 0.39 * len(words) / n_sentences + 11.8 * syllables / len(words) - 15.59
    return Reading(n_sentences, len(words), syllables, round(max(grade, 0.0), 1))


def _sentences(text: str) -> list[str]:
    """Paragraphs and list items are units of their own (an email wraps its lines mid-sentence,
    so a line break alone ends nothing); each unit is split at sentence punctuation."""
    units: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _LIST_ITEM.match(line):
            units.append(" ".join(current))
            current = []
        if line.strip():
            current.append(_LIST_ITEM.sub("", line).strip())
    units.append(" ".join(current))
    sentences: list[str] = []
    for unit in units:
        sentences += [s for s in _SENTENCE_END.split(unit) if s.strip()]
    return sentences


def _en_syllables(word: str) -> int:
    groups = len(_EN_VOWELS.findall(word))
    # A final silent e ("take", "home"), but not "-le" after a consonant ("table") nor "the".
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and groups > 1:
        groups -= 1
    # "-ed" is silent after most consonants ("called", "moved"), sounded after t and d.
    if word.endswith("ed") and len(word) > 3 and word[-3] not in "tdaeiouy" and groups > 1:
        groups -= 1
    return max(1, groups)


def _es_syllables(word: str) -> int:
    # The u of "que", "qui", "gue", "gui" is not pronounced (but "güe" keeps it).
    word = re.sub(r"(?<=[qg])u(?=[eéií])", "", word)
    total = 0
    for group in _ES_VOWELS.findall(word):
        hiatus = sum(1 for a, b in itertools.pairwise(group) if {a, b} <= _ES_STRONG)
        total += 1 + hiatus
    return max(1, total)
