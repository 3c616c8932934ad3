"""Message templates: Jinja2, sandboxed, strict about unknown variables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache

from babel.dates import format_date, format_skeleton
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

# What every template may use; timelines add one variable per milestone (a formatted date).
BASE_VARIABLES = (
    "first_name",
    "clinic_name",
    "clinic_phone",
    "discharge_date",
    "procedure_title",
    "step_date",
)

# Autoescape is off: SMS and plain-text email are not HTML. The HTML part of an email escapes its
# own values where it builds markup.
_env = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


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


__all__ = [
    "BASE_VARIABLES",
    "LocalDate",
    "TemplateSyntaxError",
    "compile_template",
    "render",
    "undeclared_variables",
]
