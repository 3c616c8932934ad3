"""Timeline files: the built-in ones load, and every mistake is named with file, line and reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path

import pytest

from aftercare.errors import ScheduleError
from aftercare.schedules.load import Catalog, builtin_dir, load_timeline
from aftercare.schedules.timeexpr import After, OnDay
from tests.conftest import CliRun

# A small valid timeline; each bad-file test changes one thing in it.
VALID = """\
name: hip
title: Hip aftercare
version: 1
languages: [en, es]
steps:
  - id: welcome
    at: "+2h"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Welcome home, {{ first_name }}. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Bienvenido, {{ first_name }}. {{ clinic_phone }}. STOP para salir"
  - id: walk
    at: "day 8 10:00"
    repeat: {every: "7d", until: "day 22"}
    channels: [email]
    email:
      subject: {en: "Keep walking", es: "Siga caminando"}
      body: {en: "Walk a little. {{ clinic_phone }}", es: "Camine un poco. {{ clinic_phone }}"}
"""

BASE = """\
languages: [en, es]
steps:
  - id: welcome
    at: "+2h"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Welcome home. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Bienvenido. {{ clinic_phone }}. STOP para salir"
  - id: walk
    at: "day 8 10:00"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Walk a little. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Camine un poco. {{ clinic_phone }}. STOP para salir"
"""

CHILD = """\
name: knee
title: Knee aftercare
version: 2
extends: _joint
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``text`` that contains ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Factory: write a timeline file into a fresh folder and return its path."""

    def make(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return make


def load_error(path: Path) -> ScheduleError:
    with pytest.raises(ScheduleError) as caught:
        load_timeline(path)
    return caught.value


# --- the built-in timelines ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        ("kyphoplasty", {"en": "kyphoplasty", "es": "cifoplastia"}),
        ("vertebroplasty", {"en": "vertebroplasty", "es": "vertebroplastia"}),
    ],
)
def test_the_builtin_timelines_load_from_the_shared_base(name: str, titles: dict[str, str]) -> None:
    timeline = load_timeline(builtin_dir() / f"{name}.yaml")

    assert timeline.name == name
    assert dict(timeline.titles) == titles
    assert timeline.languages == ("en", "es")
    assert [s.id for s in timeline.steps] == [
        "welcome-home",
        "bandage-off",
        "soreness-check",
        "no-heavy-lifting",
        "six-weeks",
    ]
    assert all(Path(s.source).name == "_spine-augmentation.yaml" for s in timeline.steps)
    assert set(timeline.milestones) == {"bandage_off", "last_day_no_lifting", "lifting_resumes"}
    assert set(timeline.calendar) == {"bandage_off", "last_day_no_lifting"}
    assert [s.id for s in timeline.steps if s.calendar] == ["welcome-home"]


def test_a_calendar_milestone_needs_a_title_in_every_language(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        "name: cal\ntitle: Cal\nversion: 1\nlanguages: [en, es]\n"
        "milestones:\n  gone:\n    at: day 2\n    calendar: {en: Gone}\n"
        "steps:\n  - id: a\n    at: +1h\n    channels: [sms]\n"
        "    sms: {en: x, es: y}\n"
    )
    with pytest.raises(ScheduleError) as error:
        load_timeline(path)
    assert str(error.value) == f"{path}:8: milestone gone: calendar: missing language 'es'"


def test_the_builtin_welcome_is_two_hours_after_discharge_and_lifting_repeats_weekly() -> None:
    timeline = load_timeline(builtin_dir() / "kyphoplasty.yaml")
    welcome = timeline.step_by_id["welcome-home"]
    lifting = timeline.step_by_id["no-heavy-lifting"]

    assert welcome.at == After(timedelta(hours=2))
    assert welcome.expires == timedelta(hours=18)
    assert welcome.channels == ("sms", "email")
    assert lifting.at == OnDay(8, time(10, 0))
    assert lifting.repeat is not None
    assert lifting.repeat.every == timedelta(days=7)
    assert lifting.repeat.until == OnDay(36, time(0, 0))


def test_the_builtin_day_3_check_in_expects_a_pain_score_within_a_day() -> None:
    step = Catalog.default().get("kyphoplasty").step_by_id["soreness-check"]
    assert (step.expects, step.answer_within) == ("pain-score", timedelta(hours=24))


def test_the_catalog_offers_the_builtin_procedures_but_not_the_base() -> None:
    assert Catalog.default().names() == ["kyphoplasty", "vertebroplasty"]


def test_the_catalog_finds_a_procedure_whatever_the_case() -> None:
    assert Catalog.default().get(" Kyphoplasty ").name == "kyphoplasty"


def test_the_catalog_names_the_known_procedures_for_an_unknown_one() -> None:
    with pytest.raises(KeyError) as caught:
        Catalog.default().get("appendectomy")
    assert "known: kyphoplasty, vertebroplasty" in str(caught.value)


def test_the_catalog_skips_base_files_in_an_extra_folder(write: Callable[..., Path]) -> None:
    write("_joint.yaml", BASE)
    child = write("knee.yaml", CHILD)

    catalog = Catalog.default(child.parent)

    assert catalog.names() == ["knee", "kyphoplasty", "vertebroplasty"]


def test_the_valid_example_loads(write: Callable[..., Path]) -> None:
    timeline = load_timeline(write("hip.yaml", VALID))

    assert timeline.title == "Hip aftercare"
    assert [s.id for s in timeline.steps] == ["welcome", "walk"]
    assert timeline.steps[1].email_subject == {"en": "Keep walking", "es": "Siga caminando"}


# --- mistakes, each with file, line and reason ----------------------------------------------


def _insert_after(needle: str, addition: str) -> Callable[[str], str]:
    return lambda text: text.replace(needle, needle + addition, 1)


def _delete_line_with(needle: str) -> Callable[[str], str]:
    return lambda text: "".join(line for line in text.splitlines(True) if needle not in line)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


BAD_FILES = [
    pytest.param(
        _insert_after("version: 1\n", "colour: blue\n"),
        ("colour: blue", 1),
        "the file: unknown key 'colour'",
        id="an unknown top-level key",
    ),
    pytest.param(
        _insert_after('at: "+2h"\n', "    when: later\n"),
        ("when: later", 1),
        "step welcome: unknown key 'when'",
        id="an unknown step key",
    ),
    pytest.param(
        _insert_after('at: "+2h"\n', '    expires: "12x"\n'),
        ('expires: "12x"', 1),
        "expires: '12x' is not a duration (expected e.g. 30s, 90m, 12h, 7d, 6w)",
        id="a bad duration",
    ),
    pytest.param(
        _replace('at: "+2h"', 'at: "tomorrow"'),
        ('at: "tomorrow"', 1),
        "at: 'tomorrow' is not a time (expected e.g. +2h, +90m or 'day 2 09:00')",
        id="a bad at",
    ),
    pytest.param(
        _replace('at: "day 8 10:00"', 'at: "day 8 25:00"'),
        ('at: "day 8 25:00"', 1),
        "at: 'day 8 25:00' is not a time",
        id="an hour that does not exist",
    ),
    pytest.param(
        _delete_line_with("Bienvenido"),
        ("    sms:", 1),
        "step welcome: sms: missing language 'es'",
        id="a missing language text",
    ),
    pytest.param(
        _insert_after('STOP para salir"\n', '      fr: "{{ clinic_name }} STOP"\n'),
        ("fr: ", 1),
        "step welcome: sms: language 'fr' is not in languages",
        id="a language not in languages",
    ),
    pytest.param(
        _replace("Welcome home, {{ first_name }}", "Welcome home, {{ last_name }}"),
        ("{{ last_name }}", 1),
        "step welcome: sms [en]: unknown template variable 'last_name'",
        id="a template variable that does not exist",
    ),
    pytest.param(
        _replace("Bienvenido, {{ first_name }}", "Bienvenido, {{ first_name }"),
        ("Bienvenido, {{ first_name }.", 1),
        "step welcome: sms [es]: template error:",
        id="a template syntax error",
    ),
    pytest.param(
        _replace("id: walk", "id: welcome"),
        ("id: welcome", 2),
        "step id 'welcome' is used twice",
        id="a duplicate step id",
    ),
    pytest.param(
        _insert_after("channels: [sms]\n", '    at: "+3h"\n'),
        ('at: "+3h"', 1),
        "not valid YAML: duplicate key 'at'",
        id="a duplicate YAML key",
    ),
    pytest.param(
        _replace("title: Hip aftercare", "title: Hip aftercare: the sequel"),
        ("the sequel", 1),
        "not valid YAML: mapping values are not allowed here",
        id="invalid YAML",
    ),
    pytest.param(
        _replace("languages: [en, es]\n", "languages: [en, es\n"),
        ("steps:", 1),
        "not valid YAML: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence on line 4)",
        id="an unclosed list",
    ),
    pytest.param(
        _insert_after("version: 1\n", "extends: _nowhere\n"),
        ("extends: _nowhere", 1),
        "extends _nowhere.yaml, not found",
        id="extends of a missing file",
    ),
    pytest.param(
        _replace('every: "7d"', 'every: "36h"'),
        ("repeat:", 1),
        "step walk: a 'day N' step repeats by whole days until 'day N'",
        id="a day step repeating by part of a day",
    ),
    pytest.param(
        _replace('every: "7d"', 'every: "99999999999999999999d"'),
        ("repeat:", 1),
        "every: '99999999999999999999d' is not a duration",
        id="a duration too large for any calendar",
    ),
    pytest.param(
        _replace('at: "day 8 10:00"', 'at: "day 20260 10:00"'),
        ('at: "day 20260 10:00"', 1),
        "at: 'day 20260 10:00' is later than day 3660",
        id="a day number beyond any aftercare",
    ),
    pytest.param(
        _replace("languages: [en, es]", "languages: [en, zz]"),
        ("languages:", 1),
        "language 'zz' is not a known locale",
        id="a language no calendar knows",
    ),
    pytest.param(
        _replace('until: "day 22"', 'until: "day 4"'),
        ("repeat:", 1),
        "step walk: until is before the first occurrence",
        id="a repeat that ends before it starts",
    ),
    pytest.param(
        _insert_after("    channels: [sms]\n", "    expects: mood\n"),
        ("expects: mood", 1),
        "expects must be one of ['pain-score'], got 'mood'",
        id="an answer no step can expect",
    ),
    pytest.param(
        _insert_after("    channels: [email]\n", "    expects: pain-score\n"),
        ("expects: pain-score", 1),
        "expects needs the sms channel",
        id="an expected answer on a step without texts",
    ),
    pytest.param(
        _insert_after("    channels: [sms]\n", "    answer_within: 24h\n"),
        ("answer_within", 1),
        "answer_within needs 'expects' on the step",
        id="a grace period for no answer",
    ),
    pytest.param(
        _insert_after(
            "    channels: [sms]\n", "    expects: pain-score\n    answer_within: soon\n"
        ),
        ("answer_within", 1),
        "answer_within: 'soon' is not a duration",
        id="a grace period that is not a duration",
    ),
]


@pytest.mark.parametrize(("edit", "where", "reason"), BAD_FILES)
def test_it_rejects_a_bad_file_with_its_file_line_and_reason(
    write: Callable[..., Path],
    edit: Callable[[str], str],
    where: tuple[str, int],
    reason: str,
) -> None:
    text = edit(VALID)
    path = write("hip.yaml", text)

    error = load_error(path)

    line = line_of(text, *where)
    assert (error.file, error.line) == (str(path), line)
    assert str(error).startswith(f"{path}:{line}: {reason}")


def test_it_rejects_a_file_that_is_not_a_mapping(write: Callable[..., Path]) -> None:
    path = write("list.yaml", "- just\n- a list\n")

    assert str(load_error(path)) == (
        f"{path}:1: expected a mapping with name, title, version, steps"
    )


def test_it_rejects_an_extends_that_is_not_a_file_name(write: Callable[..., Path]) -> None:
    path = write("hip.yaml", VALID.replace("version: 1\n", "version: 1\nextends: ../../etc\n"))

    error = load_error(path)

    assert error.line == 4
    assert "extends must name a file of the same folder" in error.reason


def test_it_rejects_a_file_that_extends_itself(write: Callable[..., Path]) -> None:
    path = write("hip.yaml", VALID.replace("version: 1\n", "version: 1\nextends: hip\n"))

    assert load_error(path).reason == "extends itself"


def test_it_rejects_two_files_that_extend_each_other(write: Callable[..., Path]) -> None:
    write("_joint.yaml", BASE + "extends: knee\n")
    child = write("knee.yaml", CHILD)

    error = load_error(child)

    assert (Path(error.file).name, error.line) == ("_joint.yaml", len(BASE.splitlines()) + 1)
    assert error.reason == "knee.yaml extends it back"


# --- extends ---------------------------------------------------------------------------------


def test_a_child_overrides_a_base_step_by_id_and_adds_new_ones(write: Callable[..., Path]) -> None:
    write("_joint.yaml", BASE)
    child_text = (
        CHILD
        + """\
steps:
  - id: walk
    at: "day 9 11:00"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Walk more. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Camine más. {{ clinic_phone }}. STOP para salir"
  - id: six-weeks
    at: "day 42 10:00"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Six weeks. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Seis semanas. {{ clinic_phone }}. STOP para salir"
"""
    )
    child = write("knee.yaml", child_text)

    timeline = load_timeline(child)

    assert [s.id for s in timeline.steps] == ["welcome", "walk", "six-weeks"]
    walk = timeline.step_by_id["walk"]
    assert walk.at == OnDay(9, time(11, 0))
    assert walk.sms["en"].endswith("Walk more. {{ clinic_phone }}. STOP to end")
    assert (walk.source, walk.line) == (str(child), line_of(child_text, "- id: walk"))
    assert timeline.step_by_id["welcome"].source == str(child.with_name("_joint.yaml"))
    assert (timeline.name, timeline.version, timeline.source) == ("knee", 2, str(child))


def test_an_error_in_an_inherited_step_names_the_base_file(write: Callable[..., Path]) -> None:
    base_text = BASE.replace("Camine un poco.", "Camine {{ distance }}.")
    base = write("_joint.yaml", base_text)
    child = write("knee.yaml", CHILD)

    error = load_error(child)

    assert (error.file, error.line) == (str(base), line_of(base_text, "{{ distance }}"))
    assert "unknown template variable 'distance'" in error.reason


def test_an_error_in_an_inherited_top_level_key_names_the_base_file(
    write: Callable[..., Path],
) -> None:
    base_text = BASE.replace("languages: [en, es]", "languages: en")
    base = write("_joint.yaml", base_text)
    child = write("knee.yaml", CHILD)

    error = load_error(child)

    assert (error.file, error.line) == (str(base), 1)
    assert error.reason == "languages must be a list such as [en, es]"


def test_a_child_may_not_define_one_step_id_twice(write: Callable[..., Path]) -> None:
    write("_joint.yaml", BASE)
    step = """\
  - id: walk
    at: "day 9 11:00"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: Walk. {{ clinic_phone }}. STOP to end"
      es: "{{ clinic_name }}: Camine. {{ clinic_phone }}. STOP para salir"
"""
    child_text = CHILD + "steps:\n" + step + step
    child = write("knee.yaml", child_text)

    error = load_error(child)

    assert (error.file, error.line) == (str(child), line_of(child_text, "id: walk", 2))
    assert error.reason == "step id 'walk' is used twice"


def test_an_extends_of_a_missing_base_names_the_child(write: Callable[..., Path]) -> None:
    child = write("knee.yaml", CHILD)

    assert str(load_error(child)) == f"{child}:4: extends _joint.yaml, not found"


# --- the CLI ---------------------------------------------------------------------------------


def test_schedules_list_prints_the_procedures(run: CliRun) -> None:
    result = run("schedules", "list", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["name"], r["title"], r["version"]) for r in rows] == [
        ("kyphoplasty", "kyphoplasty", 1),
        ("vertebroplasty", "vertebroplasty", 1),
    ]
    assert rows[0]["languages"] == ["en", "es"]


def test_schedules_list_prints_a_table(run: CliRun) -> None:
    result = run("schedules", "list")

    assert result.exit_code == 0
    assert "kyphoplasty" in result.stdout
    assert "vertebroplasty" in result.stdout


def test_schedules_show_prints_the_steps(run: CliRun) -> None:
    result = run("schedules", "show", "kyphoplasty", "--json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == "kyphoplasty"
    steps = {s["id"]: s for s in shown["steps"]}
    assert list(steps) == [
        "welcome-home",
        "bandage-off",
        "soreness-check",
        "no-heavy-lifting",
        "six-weeks",
    ]
    assert steps["welcome-home"]["at"] == "+2h"
    assert steps["bandage-off"]["at"] == "day 2 09:00"
    assert steps["no-heavy-lifting"]["repeat"].startswith("every 7d until day 36")


def test_schedules_show_of_an_unknown_name_lists_the_known_ones(run: CliRun) -> None:
    result = run("schedules", "show", "nope")

    assert result.exit_code == 1
    assert "unknown procedure 'nope'" in result.stderr
    assert "kyphoplasty, vertebroplasty" in result.stderr


def test_schedules_check_passes_the_builtin_timelines(run: CliRun) -> None:
    result = run("schedules", "check")

    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_schedules_check_json_lists_what_it_checked(run: CliRun) -> None:
    files = [str(builtin_dir() / f"{name}.yaml") for name in ("kyphoplasty", "vertebroplasty")]

    result = run("schedules", "check", "--json", *files)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["checked"] == files
    # Only notes: how long a name the welcome text takes before it is shortened.
    assert {f["level"] for f in data["findings"]} == {"note"}


def test_schedules_check_fails_a_bad_file_with_file_and_line(
    run: CliRun, write: Callable[..., Path]
) -> None:
    text = VALID.replace('at: "+2h"', 'at: "+2h"\n    expires: "12x"')
    path = write("hip.yaml", text)

    result = run("schedules", "check", str(path))

    assert result.exit_code == 1
    assert f"{path}:{line_of(text, '12x')}: error: expires: '12x' is not a duration" in (
        result.stderr
    )
    assert "1 error(s)" in result.stdout


def test_schedules_check_json_reports_the_bad_file(run: CliRun, write: Callable[..., Path]) -> None:
    text = VALID.replace("version: 1\n", "version: 1\ncolour: blue\n")
    path = write("hip.yaml", text)

    result = run("schedules", "check", "--json", str(path))

    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["level"] == "error"
    assert (finding["file"], finding["line"]) == (str(path), line_of(text, "colour"))


def test_schedules_check_accepts_a_copy_of_the_builtin_files(run: CliRun, tmp_path: Path) -> None:
    for source in builtin_dir().glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)

    result = run("schedules", "check", str(tmp_path / "kyphoplasty.yaml"))

    assert result.exit_code == 0, result.output
