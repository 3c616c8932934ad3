"""Message templates: Jinja2, sandboxed, strict about unknown variables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Any

from babel.dates import format_date, format_skeleton
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

# What every template may use; timelines add one variable per milestone (a formatted date).
BASE_VARIABLES = (
    "first_name",
    "clinic_name",
    "clinic_phone",
    "discharge_date",
    "procedure_title",
    "step_date",
    # "patient" or "caregiver": one step can say "you" to the patient and "the patient" to the
    # person driving them home ({% if audience == "caregiver" %}...{% endif %}).
    "audience",
)

# No message is anywhere near this long; a template that builds more is a mistake or an attack.
MAX_BUILT = 10_000


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox stops a template from reaching Python's internals, not from asking for a
    gigabyte: ``{{ "x" * 10**9 }}`` would allocate it while `schedules check` renders the file.
    Repetition and powers are checked before they run."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _number(left) and _number(right) and abs(right) > 64:
            raise SecurityError(f"exponent {right} is too large for a message template")
        if operator == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise SecurityError(f"a message template may build at most {MAX_BUILT} items")
        return super().call_binop(context, operator, left, right)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _too_long(sequence: object, times: object) -> bool:
    return (
        isinstance(sequence, str | list | tuple)
        and isinstance(times, int)
        and len(sequence) * times > MAX_BUILT
    )


# Autoescape is off: SMS and plain-text email are not HTML. The HTML part of an email escapes its
# own values where it builds markup.
_env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def undeclared_variables(source: str) -> set[str]:
    """Names the template uses; raises ``TemplateSyntaxError`` if it does not parse."""
    return set(meta.find_undeclared_variables(_env.parse(source)))


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    return _env.from_string(source)


def render(source: str, context: Mapping[str, object]) -> str:
    return compile_template(source).render(context).strip()


class LocalDate:
    """A date in the patient's language: ``{{ d }}`` is short for SMS ("Wed, Nov 25",
    "mié, 25 nov"); ``{{ d.long }}`` is the full form for email ("Wednesday, November 25, 2026")."""

    __slots__ = ("day", "language")

    def __init__(self, day: date, language: str) -> None:
        self.day = day
        self.language = language

    def __str__(self) -> str:
        return str(format_skeleton("MMMEd", self.day, locale=self.language))

    @property
    def long(self) -> str:
        return str(format_date(self.day, "full", locale=self.language))

    @property
    def written(self) -> str:
        """Weekday and month written out, without the year: "Monday, January 4", "lunes 4 de
        enero" (abbreviations such as "lun, 4 ene" are hard to read, more so in Spanish)."""
        pattern = _WRITTEN.get(self.language.split("_")[0])
        if pattern:
            return str(format_date(self.day, pattern, locale=self.language))
        return str(format_skeleton("MMMMEEEEd", self.day, locale=self.language))


# Babel's skeletons abbreviate the English weekday and put a comma after the Spanish one; the
# clinic's wording is "Monday, January 4" and "hasta el lunes 4 de enero".
_WRITTEN = {"en": "EEEE, MMMM d", "es": "EEEE d 'de' MMMM"}


__all__ = [
    "BASE_VARIABLES",
    "LocalDate",
    "TemplateSyntaxError",
    "compile_template",
    "render",
    "undeclared_variables",
]
