"""Every text fits one SMS: the rule that shortens a patient's name when it does not.

One SMS holds 160 GSM-7 characters, or 70 when a character outside GSM-7 forces UCS-2. A text
is rendered with the patient's first name; if it is too long, with the first word of the name
("Maria Guadalupe del Carmen" -> "Maria"); if still too long, with no name at all, the comma or
space that joined it going too ("Welcome home, Ana." -> "Welcome home.", "Ana, deje" -> "deje").
The instructions themselves are never cut: a text too long even without a name is not sent
(the lint reports such a template as an error, and each template's name budget as a note).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aftercare import gsm

GSM7_LIMIT = 160
UCS2_LIMIT = 70
MAX_NAME = 60  # the longest first name validation accepts
# Stands in for a left-out name while the template renders, then goes with its separator.
_LEFT_OUT = "\x00"
_WITH_SEPARATOR = re.compile(f", {_LEFT_OUT}|{_LEFT_OUT},? ?")
_SPACES = re.compile(" {2,}")


@dataclass(frozen=True)
class Fitted:
    text: str
    fits: bool


def length(text: str) -> tuple[int, int]:
    """(characters, limit): GSM-7 septets and 160, or UTF-16 units and 70 for UCS-2."""
    if gsm.non_gsm_characters(text):
        return len(text.encode("utf-16-le")) // 2, UCS2_LIMIT
    return gsm.gsm_length(text), GSM7_LIMIT


def fits(text: str) -> bool:
    used, limit = length(text)
    return used <= limit


def fit(render: Callable[[str], str], first_name: str) -> Fitted:
    """The text ``render(name)`` gives for the first of the name, its first word and no name
    that fits; the nameless text with ``fits=False`` when none does."""
    for name in dict.fromkeys((first_name, first_name.split(" ")[0])):
        text = render(name)
        if fits(text):
            return Fitted(text, True)
    text = _without_name(render)
    return Fitted(text, fits(text))


def _without_name(render: Callable[[str], str]) -> str:
    """The text with the name left out, with the comma or space that joined it."""
    return _SPACES.sub(" ", _WITH_SEPARATOR.sub("", render(_LEFT_OUT)))


def name_budget(render: Callable[[str], str]) -> int:
    """The longest name (in plain GSM-7 letters) with which the text still fits whole."""
    if not fits(render("")):
        return -1
    low, high = 0, MAX_NAME
    while low < high:
        middle = (low + high + 1) // 2
        if fits(render("a" * middle)):
            low = middle
        else:
            high = middle - 1
    return low
