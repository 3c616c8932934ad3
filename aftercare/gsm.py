"""GSM-7, the 7-bit SMS alphabet. One character outside it turns the whole text into UCS-2, which
cuts a segment from 160 to 70 characters and so multiplies the cost and the number of parts."""

from __future__ import annotations

import unicodedata

_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table cost two (an escape plus the character).
_EXTENDED = set("^{}\\[~]|€\f")

# Twilio's "smart encoding" folds these look-alikes to GSM-7 too; doing it ourselves keeps the
# count we lint the same as the one the carrier bills, whatever the account setting.
_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2022": "-",
        "\u00b4": "'",
    }
)


def fold(text: str) -> str:
    """Replace characters that would force UCS-2 by their nearest GSM-7 form where one exists.

    Accented letters that GSM-7 lacks (á, í, ó, ú, ...) lose the accent; é, ñ, ü, ¿ and ¡ are in
    GSM-7 and stay, so Spanish remains readable.
    """
    # Composed first: "e" + U+0301 (as some keyboards and PDFs produce) is é, which GSM-7 has.
    text = unicodedata.normalize("NFC", text).translate(_LOOKALIKES)
    if all(ch in _BASIC or ch in _EXTENDED for ch in text):
        return text
    return "".join(_fold_char(ch) for ch in text)


def _fold_char(ch: str) -> str:
    if ch in _BASIC or ch in _EXTENDED:
        return ch
    base = unicodedata.normalize("NFD", ch)[0]
    return base if base in _BASIC else ch


def non_gsm_characters(text: str) -> list[str]:
    """Characters that would force UCS-2 encoding, in order of first appearance."""
    return list(dict.fromkeys(ch for ch in text if ch not in _BASIC and ch not in _EXTENDED))


def gsm_length(text: str) -> int:
    """Septets the text takes in GSM-7 (extension characters count two)."""
    return sum(2 if ch in _EXTENDED else 1 for ch in text)
