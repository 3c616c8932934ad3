"""Timeline files: load, merge with their base, validate; errors name the file and line.

A file may ``extends: _base-name`` another file of the same folder (names starting with ``_`` are
bases, never offered to staff). The child's keys win; its steps replace the base's steps of the
same id and add new ones after them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError

from aftercare.errors import ScheduleError
from aftercare.templates import BASE_VARIABLES, TemplateSyntaxError, undeclared_variables
from aftercare.timeexpr import OnDay, When, parse_duration, parse_when
from aftercare.yamlsource import LineDict, LineList, load_yaml

CHANNELS = ("sms", "email")
DEFAULT_EXPIRES = timedelta(hours=12)
_TOP_KEYS = {"name", "title", "version", "languages", "extends", "milestones", "defaults", "steps"}
_STEP_KEYS = {"id", "at", "expires", "channels", "repeat", "sms", "email", "calendar"}
_MILESTONE_KEYS = {"at", "calendar"}
_DEFAULT_KEYS = {"expires", "channels"}
_BASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# What the database holds: procedure and step names in 64 characters, the version in a 32-bit
# integer. A file past these would load, then fail every enrollment with a database error.
MAX_NAME = 64
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Repeat:
    every: timedelta
    until: When


@dataclass(frozen=True)
class Step:
    id: str
    at: When
    expires: timedelta
    channels: tuple[str, ...]
    sms: Mapping[str, str]
    email_subject: Mapping[str, str]
    email_body: Mapping[str, str]
    repeat: Repeat | None = None
    # The email of this step carries the timeline's calendar milestones as an .ics attachment.
    calendar: bool = False
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class Timeline:
    name: str
    titles: Mapping[str, str]
    version: int
    languages: tuple[str, ...]
    steps: tuple[Step, ...]
    milestones: Mapping[str, OnDay]
    source: str
    # Milestones that become calendar events, with the event's title in each language.
    calendar: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.titles[self.languages[0]]

    @cached_property
    def step_by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.source))


def builtin_dir() -> Path:
    """The shipped timelines: inside the package in a wheel, at the repo top in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_data" / "schedules"
    return packaged if packaged.is_dir() else here.parent / "schedules"


class Catalog:
    """All timelines staff can choose from, by name (built-in ones plus an extra folder)."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self._timelines: dict[str, Timeline] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.yaml")):
                if not path.name.startswith("_"):
                    timeline = load_timeline(path)
                    self._timelines[timeline.name] = timeline

    @classmethod
    def default(cls, extra: Path | None = None) -> Catalog:
        return cls([builtin_dir(), *([extra] if extra else [])])

    def names(self) -> list[str]:
        return sorted(self._timelines)

    def __iter__(self) -> Any:
        return iter(self._timelines[name] for name in self.names())

    def get(self, name: str) -> Timeline:
        try:
            return self._timelines[name.strip().lower()]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"unknown procedure {name!r} (known: {known})") from None


def load_timeline(path: Path) -> Timeline:
    """Load, merge and validate one file; raises ScheduleError naming file, line and reason."""
    data = _merged(path, seen=())
    return _Validator(str(path), data).timeline()


def _read(path: Path) -> LineDict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(str(path), None, f"cannot read the file ({exc})") from None
    try:
        data = load_yaml(text, str(path))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ScheduleError(str(path), line, f"not valid YAML: {_yaml_problem(exc)}") from None
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses (NUL, most control characters): its str() is two lines with
        # a position in a "<unicode string>"; the error names the file's line instead.
        line = text.count("\n", 0, exc.position) + 1
        reason = f"not valid YAML: character #x{exc.character:04x} is not allowed"
        raise ScheduleError(str(path), line, reason) from None
    except yaml.YAMLError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScheduleError(str(path), None, f"not valid YAML: {reason}") from None
    except RecursionError:  # "[[[[..." thousands deep: the parser recurses once per level
        raise ScheduleError(str(path), None, "not valid YAML: nested too deeply") from None
    if not isinstance(data, LineDict):
        raise ScheduleError(str(path), 1, "expected a mapping with name, title, version, steps")
    return data


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """The parser's problem, plus where the construct it was reading began (an unclosed
    ``[`` is found lines after the line it is on)."""
    context, mark = exc.context, exc.context_mark
    if context and mark and exc.problem_mark and mark.line != exc.problem_mark.line:
        return f"{exc.problem} ({context} on line {mark.line + 1})"
    return str(exc.problem)


def _merged(path: Path, seen: tuple[Path, ...]) -> LineDict:
    data = _read(path)
    if "extends" not in data:
        return data
    parent_name = data["extends"]
    # Only a plain name: a path would let a file reach outside its folder.
    if not isinstance(parent_name, str) or not _BASE_NAME.match(parent_name):
        raise ScheduleError(
            str(path),
            data.line_of("extends"),
            "extends must name a file of the same folder, without .yaml (e.g. _spine-augmentation)",
        )
    parent_path = path.with_name(f"{parent_name}.yaml")
    if parent_path == path or parent_path in seen:
        reason = "extends itself" if parent_path == path else f"{parent_path.name} extends it back"
        raise ScheduleError(str(path), data.line_of("extends"), reason)
    if not parent_path.is_file():
        reason = f"extends {parent_path.name}, not found"
        raise ScheduleError(str(path), data.line_of("extends"), reason)
    return _merge(_merged(parent_path, (*seen, path)), data)


def _merge(base: LineDict, child: LineDict) -> LineDict:
    merged = _merge_dicts(base, LineDict())  # a copy of the base, each key with its origin
    for key, value in child.items():
        inherited = base.get(key)
        if key == "steps" and isinstance(value, LineList) and isinstance(inherited, LineList):
            value = _merge_steps(inherited, value)
        elif isinstance(value, LineDict) and isinstance(inherited, LineDict):
            value = _merge_dicts(inherited, value)  # milestones, defaults
        elif key == "extends":
            continue
        _put(merged, key, value, child)
    merged.line, merged.source = child.line, child.source
    return merged


def _merge_dicts(base: LineDict, child: LineDict) -> LineDict:
    """The keys of both; the child's win. Each key keeps the line and file it came from."""
    merged = LineDict()
    for source in (base, child):
        for key, value in source.items():
            _put(merged, key, value, source)
    merged.line, merged.source = child.line or base.line, child.source or base.source
    return merged


def _put(merged: LineDict, key: str, value: Any, origin: LineDict) -> None:
    merged[key] = value
    merged.key_lines[key] = origin.line_of(key)
    merged.key_sources[key] = origin.source_of(key)


def _merge_steps(base: LineList, child: LineList) -> LineList:
    by_id = {s.get("id"): i for i, s in enumerate(base) if isinstance(s, dict)}
    merged, lines = list(base), list(base.item_lines)
    sources = [base.source_of(i) for i in range(len(base))]
    replaced: set[Any] = set()
    for index, step in enumerate(child):
        step_id = step.get("id") if isinstance(step, dict) else None
        slot = by_id.get(step_id) if step_id not in replaced else None
        if slot is None:
            # A second child step with an id already replaced is appended, so the validator
            # reports it as a duplicate instead of the merge silently keeping the last one.
            merged.append(step)
            lines.append(child.line_of(index))
            sources.append(child.source_of(index))
        else:
            replaced.add(step_id)
            merged[slot], lines[slot] = step, child.line_of(index)
            sources[slot] = child.source_of(index)
    result = LineList(merged)
    result.line, result.source = child.line, child.source
    result.item_lines, result.item_sources = lines, sources
    return result


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
            source=item.source or p.file,
            line=item.line,
        )

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
