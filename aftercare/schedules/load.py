"""Timeline files: load, merge with their base, validate; errors name the file and line.

A file may ``extends: _base-name`` another file of the same folder, or a built-in base (names
starting with ``_`` are bases, never offered to staff): a clinic's own file in
``AFTERCARE_SCHEDULES_DIR`` can extend ``_spine-augmentation``. The child's keys win; its steps
replace the base's steps of the same id (key by key: an ``sms:`` alone keeps the base's email)
and add new ones after them.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from aftercare.errors import ScheduleError
from aftercare.schedules.model import Timeline
from aftercare.schedules.validate import validate
from aftercare.schedules.yamlsource import LineDict, LineList, load_yaml

_BASE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def builtin_dir() -> Path:
    """The shipped timelines: inside the package in a wheel, at the repo top in a checkout."""
    here = Path(__file__).resolve().parent.parent  # aftercare/
    packaged = here / "_data" / "schedules"
    return packaged if packaged.is_dir() else here.parent / "schedules"


class Catalog:
    """All timelines staff can choose from, by name (built-in ones plus an extra folder).

    A file with an error does not stop the others: it is kept in ``problems`` (for `schedules
    check`, `doctor` and the daemon's start), and its procedure, named by the file (``hip.yaml``
    is ``hip``), is unavailable for new enrollments instead of silently falling back to another
    file of the same name.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self._timelines: dict[str, Timeline] = {}
        self._broken: dict[str, ScheduleError] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.yaml")):
                if path.name.startswith("_"):
                    continue
                try:
                    timeline = load_timeline(path)
                except ScheduleError as exc:
                    name = path.stem.lower()
                    self._broken[name] = exc
                    self._timelines.pop(name, None)
                    continue
                self._timelines[timeline.name] = timeline
                self._broken.pop(timeline.name, None)

    @property
    def problems(self) -> list[ScheduleError]:
        """The files that did not load, each error naming file, line and reason."""
        return [self._broken[name] for name in sorted(self._broken)]

    @classmethod
    def default(cls, extra: Path | None = None) -> Catalog:
        return cls([builtin_dir(), *([extra] if extra else [])])

    def names(self) -> list[str]:
        return sorted(self._timelines)

    def __iter__(self) -> Any:
        return iter(self._timelines[name] for name in self.names())

    def get(self, name: str) -> Timeline:
        key = name.strip().lower()
        try:
            return self._timelines[key]
        except KeyError:
            if key in self._broken:
                raise KeyError(
                    f"procedure {key!r} is unavailable: its timeline file has an error "
                    f"({self._broken[key]}); see 'aftercare schedules check'"
                ) from None
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"unknown procedure {name!r} (known: {known})") from None


def load_timeline(path: Path) -> Timeline:
    """Load, merge and validate one file; raises ScheduleError naming file, line and reason."""
    texts: dict[str, str] = {}
    data = _merged(path, (), texts)
    return replace(validate(str(path), data), files=texts)


def load_snapshot(main: str, files: Mapping[str, str]) -> Timeline:
    """A timeline from the texts an enrollment kept (``Timeline.files``), ``main`` the file
    staff enrolled with: the version planned, whatever its file has become since."""
    with tempfile.TemporaryDirectory(prefix="aftercare-timeline-") as folder:
        for name, text in files.items():
            if Path(name).name != name:  # a stored name is a bare file name; never a path
                raise ScheduleError(name, None, "not a file name")
            (Path(folder) / name).write_text(text, encoding="utf-8")
        return load_timeline(Path(folder) / main)


def _read(path: Path, texts: dict[str, str]) -> LineDict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(str(path), None, f"cannot read the file ({exc})") from None
    texts[path.name] = text
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


def _merged(path: Path, seen: tuple[Path, ...], texts: dict[str, str]) -> LineDict:
    data = _read(path, texts)
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
    if not parent_path.is_file() and parent_name.startswith("_"):
        parent_path = builtin_dir() / f"{parent_name}.yaml"
    if parent_path == path or parent_path in seen:
        reason = "extends itself" if parent_path == path else f"{parent_path.name} extends it back"
        raise ScheduleError(str(path), data.line_of("extends"), reason)
    if not parent_path.is_file():
        reason = f"extends {parent_path.name}, not found here nor among the built-in bases"
        raise ScheduleError(str(path), data.line_of("extends"), reason)
    return _merge(_merged(parent_path, (*seen, path), texts), data)


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


def _merge_deep(base: LineDict, child: LineDict) -> LineDict:
    """A step over the base's step of the same id: mappings (``sms``, ``email``, ``subject``)
    merge key by key, so a clinic replaces one text without repeating the rest."""
    merged = _merge_dicts(base, LineDict())
    for key, value in child.items():
        inherited = base.get(key)
        if isinstance(value, LineDict) and isinstance(inherited, LineDict):
            value = _merge_deep(inherited, value)
        _put(merged, key, value, child)
    merged.line, merged.source = child.line, child.source
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
            base_step = merged[slot]
            if isinstance(base_step, LineDict) and isinstance(step, LineDict):
                step = _merge_deep(base_step, step)
            merged[slot], lines[slot] = step, child.line_of(index)
            sources[slot] = child.source_of(index)
    result = LineList(merged)
    result.line, result.source = child.line, child.source
    result.item_lines, result.item_sources = lines, sources
    return result
