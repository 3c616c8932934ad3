"""Merged YAML data checked, key by key, into a Timeline; the first mistake names its line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from babel import Locale, UnknownLocaleError

from aftercare.errors import ScheduleError
from aftercare.schedules.model import (
    CHANNELS,
    DEFAULT_ANSWER_WITHIN,
    DEFAULT_EXPIRES,
    EXPECTS,
    MAX_NAME,
    MAX_VERSION,
    Repeat,
    Step,
    Timeline,
)
from aftercare.schedules.timeexpr import OnDay, When, parse_duration, parse_when
from aftercare.schedules.yamlsource import LineDict, LineList
from aftercare.statuses import ChannelName
from aftercare.templates import BASE_VARIABLES, TemplateSyntaxError, undeclared_variables

_TOP_KEYS = {"name", "title", "version", "languages", "extends", "milestones", "defaults", "steps"}
_STEP_KEYS = {
    "id",
    "at",
    "expires",
    "channels",
    "repeat",
    "sms",
    "email",
    "calendar",
    "expects",
    "answer_within",
}
_MILESTONE_KEYS = {"at", "calendar"}
_DEFAULT_KEYS = {"expires", "channels"}


def validate(file: str, data: LineDict) -> Timeline:
    """The timeline ``data`` (merged from ``file`` and its bases) describes; raises
    ScheduleError at the first mistake."""
    return _Validator(file, data).timeline()


class _Validator:
    """Turns merged YAML data into a Timeline, or raises at the first mistake."""

    def __init__(self, file: str, data: LineDict) -> None:
        self.file = file
        self.data = data

    def fail(self, line: int | None, reason: str) -> ScheduleError:
        return ScheduleError(self.file, line, reason)

    def at(self, where: LineDict | LineList, key: Any, reason: str) -> ScheduleError:
        """An error at ``key`` of ``where``, in the file that key came from."""
        return ScheduleError(where.source_of(key) or self.file, where.line_of(key), reason)

    def timeline(self) -> Timeline:
        data = self.data
        self._no_unknown_keys(data, _TOP_KEYS, "the file")
        name = self._text(data, "name")
        if not name.replace("-", "").replace("_", "").isalnum() or name != name.lower():
            raise self.at(data, "name", f"name {name!r} must be lower-case letters, digits and -")
        if len(name) > MAX_NAME:
            raise self.at(data, "name", f"name is longer than {MAX_NAME} characters")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.at(data, "version", "version must be a whole number of at least 1")
        if version > MAX_VERSION:
            raise self.at(data, "version", f"version must be at most {MAX_VERSION}")
        languages = self._languages()
        milestones, calendar = self._milestones(languages)
        defaults = self._defaults()
        steps = self._steps(languages, defaults, set(milestones))
        return Timeline(
            name=name,
            titles=self._titles(languages),
            version=version,
            languages=languages,
            steps=steps,
            milestones=milestones,
            calendar=calendar,
            source=self.file,
        )

    def _no_unknown_keys(self, mapping: LineDict, allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.at(
                    mapping, key, f"{where}: unknown key {key!r} (expected one of: {expected})"
                )

    def _text(self, mapping: LineDict, key: str) -> str:
        value = mapping.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.at(mapping, key, f"{key!r} is missing or not text")
        return value.strip()

    def _titles(self, languages: tuple[str, ...]) -> dict[str, str]:
        """``title:`` is one text for every language or a text per language."""
        value = self.data.get("title")
        if isinstance(value, LineDict):
            missing = [lang for lang in languages if not isinstance(value.get(lang), str)]
            if missing:
                raise self.at(value, missing[0], f"title: missing language {missing[0]!r}")
            return {lang: value[lang].strip() for lang in languages}
        title = self._text(self.data, "title")
        return dict.fromkeys(languages, title)

    def _languages(self) -> tuple[str, ...]:
        value = self.data.get("languages")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.at(self.data, "languages", "languages must be a list such as [en, es]")
        for language in value:
            # Dates in texts are formatted by babel for the language; an unknown one would only
            # fail when a message is sent, days after enrollment.
            try:
                Locale.parse(language)
            except (ValueError, UnknownLocaleError):
                raise self.at(
                    self.data, "languages", f"language {language!r} is not a known locale"
                ) from None
        if len(set(value)) != len(value):
            raise self.at(self.data, "languages", "languages lists a language twice")
        return tuple(value)

    def _milestones(
        self, languages: tuple[str, ...]
    ) -> tuple[dict[str, OnDay], dict[str, dict[str, str]]]:
        """``name: "day 42"``, or ``name: {at: "day 42", calendar: {en: ..., es: ...}}`` for a
        milestone that also goes into the patient's calendar attachment."""
        raw = self.data.get("milestones", LineDict())
        if not isinstance(raw, LineDict):
            raise self.at(self.data, "milestones", "milestones must map names to 'day N'")
        milestones: dict[str, OnDay] = {}
        calendar: dict[str, dict[str, str]] = {}
        for key, value in raw.items():
            if not key.isidentifier() or key in BASE_VARIABLES:
                raise self.at(raw, key, f"milestone {key!r} must be a new identifier")
            where, field_name = raw, key
            if isinstance(value, LineDict):
                self._no_unknown_keys(value, _MILESTONE_KEYS, f"milestone {key}")
                if "calendar" in value:
                    calendar[key] = self._calendar_titles(value, key, languages)
                where, field_name, value = value, "at", value.get("at")
            when = self._when(where, field_name, value)
            if not isinstance(when, OnDay):
                raise self.at(raw, key, f"milestone {key!r} must be a calendar day ('day 42')")
            milestones[key] = when
        return milestones, calendar

    def _calendar_titles(
        self, value: LineDict, key: str, languages: tuple[str, ...]
    ) -> dict[str, str]:
        titles = value["calendar"]
        if not isinstance(titles, LineDict):
            raise self.at(
                value, "calendar", f"milestone {key}: calendar needs a title per language"
            )
        for language in languages:
            if not isinstance(titles.get(language), str) or not titles[language].strip():
                raise self.at(
                    titles, language, f"milestone {key}: calendar: missing language {language!r}"
                )
        return {language: titles[language].strip() for language in languages}

    def _defaults(self) -> dict[str, Any]:
        raw = self.data.get("defaults", LineDict())
        if not isinstance(raw, LineDict):
            raise self.at(self.data, "defaults", "defaults must be a mapping")
        self._no_unknown_keys(raw, _DEFAULT_KEYS, "defaults")
        return {
            "expires": self._duration(raw, "expires") if "expires" in raw else DEFAULT_EXPIRES,
            "channels": self._channels(raw) if "channels" in raw else CHANNELS,
        }

    def _steps(
        self, languages: tuple[str, ...], defaults: dict[str, Any], milestones: set[str]
    ) -> tuple[Step, ...]:
        raw = self.data.get("steps")
        if not isinstance(raw, LineList) or not raw:
            raise self.at(self.data, "steps", "steps must be a non-empty list")
        steps: list[Step] = []
        for index, item in enumerate(raw):
            if not isinstance(item, LineDict):
                raise self.at(raw, index, "each step must be a mapping with id and at")
            step = _StepValidator(self, item, languages, defaults, milestones).step()
            if any(s.id == step.id for s in steps):
                raise self.at(item, "id", f"step id {step.id!r} is used twice")
            steps.append(step)
        return tuple(steps)

    def _when(self, mapping: LineDict, key: str, value: object) -> When:
        try:
            return parse_when(value)
        except ValueError as exc:
            raise self.at(mapping, key, f"{key}: {exc}") from None

    def _duration(self, mapping: LineDict, key: str) -> timedelta:
        try:
            return parse_duration(mapping[key])
        except ValueError as exc:
            raise self.at(mapping, key, f"{key}: {exc}") from None

    def _channels(self, mapping: LineDict) -> tuple[str, ...]:
        value = mapping.get("channels")
        if not isinstance(value, list) or not value or any(c not in CHANNELS for c in value):
            raise self.at(
                mapping, "channels", f"channels must be a list drawn from {list(CHANNELS)}"
            )
        return tuple(dict.fromkeys(value))


class _StepValidator:
    def __init__(
        self,
        parent: _Validator,
        item: LineDict,
        languages: tuple[str, ...],
        defaults: dict[str, Any],
        milestones: set[str],
    ) -> None:
        self.p = parent
        self.item = item
        self.languages = languages
        self.defaults = defaults
        self.variables = set(BASE_VARIABLES) | milestones
        self.id = str(item.get("id", "")).strip()

    def step(self) -> Step:
        item, p = self.item, self.p
        p._no_unknown_keys(item, _STEP_KEYS, f"step {self.id or '?'}")
        if not self.id or not self.id.replace("-", "").isalnum():
            raise p.at(item, "id", "step id is missing or not made of letters, digits and -")
        if len(self.id) > MAX_NAME:
            raise p.at(item, "id", f"step id is longer than {MAX_NAME} characters")
        if "at" not in item:
            raise p.at(item, "at", f"step {self.id}: 'at' is missing")
        at = p._when(item, "at", item["at"])
        channels = p._channels(item) if "channels" in item else self.defaults["channels"]
        sms = self._texts(item, "sms") if "sms" in channels else {}
        subject, body = self._email() if "email" in channels else ({}, {})
        expects, answer_within = self._expects(channels)
        return Step(
            id=self.id,
            at=at,
            expires=p._duration(item, "expires") if "expires" in item else self.defaults["expires"],
            channels=channels,
            sms=sms,
            email_subject=subject,
            email_body=body,
            repeat=self._repeat(at),
            calendar=self._calendar_flag(channels),
            expects=expects,
            answer_within=answer_within,
            source=item.source or p.file,
            line=item.line,
        )

    def _expects(self, channels: tuple[str, ...]) -> tuple[str | None, timedelta | None]:
        """``expects`` (what the step asks for) and ``answer_within`` (its grace period)."""
        item, p = self.item, self.p
        if "expects" not in item:
            if "answer_within" in item:
                raise p.at(item, "answer_within", "answer_within needs 'expects' on the step")
            return None, None
        expects = item["expects"]
        if expects not in EXPECTS:
            raise p.at(item, "expects", f"expects must be one of {list(EXPECTS)}, got {expects!r}")
        if ChannelName.SMS not in channels:
            raise p.at(item, "expects", "expects needs the sms channel: answers come by text")
        if "answer_within" not in item:
            return str(expects), DEFAULT_ANSWER_WITHIN
        return str(expects), p._duration(item, "answer_within")

    def _email(self) -> tuple[dict[str, str], dict[str, str]]:
        email = self.item.get("email")
        if not isinstance(email, LineDict):
            raise self.p.at(self.item, "email", f"step {self.id}: email needs subject and body")
        self.p._no_unknown_keys(email, {"subject", "body"}, f"step {self.id} email")
        return self._texts(email, "subject"), self._texts(email, "body")

    def _texts(self, mapping: LineDict, key: str) -> dict[str, str]:
        where = f"step {self.id}: {key}"
        texts = mapping.get(key)
        if not isinstance(texts, LineDict):
            raise self.p.at(mapping, key, f"{where} is missing (a text per language)")
        for language in self.languages:
            if language not in texts:
                # Point at the ``sms:`` (or ``subject:``) key: the missing line has no line.
                raise self.p.at(mapping, key, f"{where}: missing language {language!r}")
            if not isinstance(texts[language], str) or not texts[language].strip():
                raise self.p.at(texts, language, f"{where}: missing language {language!r}")
        for language in texts:
            if language not in self.languages:
                raise self.p.at(
                    texts, language, f"{where}: language {language!r} is not in languages"
                )
            self._check_template(texts, language, where)
        return {language: texts[language] for language in self.languages}

    def _check_template(self, texts: LineDict, language: str, where: str) -> None:
        try:
            names = undeclared_variables(texts[language])
        except TemplateSyntaxError as exc:
            raise self.p.at(
                texts, language, f"{where} [{language}]: template error: {exc.message}"
            ) from None
        unknown = sorted(names - self.variables)
        if unknown:
            known = ", ".join(sorted(self.variables))
            raise self.p.at(
                texts,
                language,
                f"{where} [{language}]: unknown template variable {unknown[0]!r} (known: {known})",
            )

    def _calendar_flag(self, channels: tuple[str, ...]) -> bool:
        value = self.item.get("calendar", False)
        if not isinstance(value, bool):
            raise self.p.at(
                self.item, "calendar", f"step {self.id}: calendar must be true or false"
            )
        if value and "email" not in channels:
            raise self.p.at(
                self.item, "calendar", f"step {self.id}: calendar needs the email channel"
            )
        return value

    def _repeat(self, at: When) -> Repeat | None:
        raw = self.item.get("repeat")
        if raw is None:
            return None
        if not isinstance(raw, LineDict) or "every" not in raw or "until" not in raw:
            raise self.p.at(self.item, "repeat", f"step {self.id}: repeat needs every and until")
        self.p._no_unknown_keys(raw, {"every", "until"}, f"step {self.id} repeat")
        every = self.p._duration(raw, "every")
        until = self.p._when(raw, "until", raw["until"])
        if isinstance(at, OnDay) and (every % timedelta(days=1) or not isinstance(until, OnDay)):
            raise self.p.at(
                raw, "every", f"step {self.id}: a 'day N' step repeats by whole days until 'day N'"
            )
        if isinstance(at, OnDay) and isinstance(until, OnDay) and until.day < at.day:
            raise self.p.at(raw, "until", f"step {self.id}: until is before the first occurrence")
        return Repeat(every, until)
