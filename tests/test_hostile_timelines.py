"""``aftercare schedules check`` and the timeline loader against hostile files: arbitrary bytes,
wrong encodings, YAML tricks (aliases, tags, deep nesting), values past what the database holds.
The outcome is ``file:line: error: reason`` and exit code 1, or a clean check; never a traceback
or a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aftercare.errors import ScheduleError
from aftercare.schedules.load import builtin_dir, load_timeline
from tests.conftest import CliRun
from tests.strategies import HOSTILE, nasty_text, sqlite_only

GOOD = """\
name: hostile
title: {en: Hostile}
version: 1
languages: [en]
steps:
  - id: welcome
    at: "+2h"
    channels: [sms]
    sms:
      en: "{{ clinic_name }}: welcome home, {{ first_name }}. {{ clinic_phone }}. Reply STOP."
"""


def check(run: CliRun, path: Path) -> tuple[int, str]:
    result = run("schedules", "check", str(path))
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


def assert_file_errors(stderr: str, path: Path) -> None:
    for line in stderr.splitlines():
        assert line.startswith(f"{path}"), line


@sqlite_only
@HOSTILE
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_clear_error_naming_the_file(
    run: CliRun, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)

    code, stderr = check(run, path)

    assert code == 1
    assert_file_errors(stderr, path)
    assert ": error: " in stderr


# Small mutations of a good file: a line replaced by hostile text, keeping the rest.
@sqlite_only
@HOSTILE
@given(line=st.integers(min_value=0, max_value=9), text=nasty_text)
def test_a_good_file_with_one_hostile_line_is_checked_without_a_traceback(
    run: CliRun, tmp_path: Path, line: int, text: str
) -> None:
    lines = GOOD.splitlines()
    lines[line] = text
    path = tmp_path / "mutated.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, stderr = check(run, path)

    assert code in (0, 1)
    assert_file_errors(stderr, path)


@sqlite_only
@HOSTILE
@given(
    key=st.sampled_from(["name", "version", "at", "expires", "id", "languages", "channels"]),
    value=st.one_of(
        nasty_text.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
        st.integers().map(str),
        st.sampled_from(
            ["[]", "{}", "null", "true", ".inf", "-.nan", "2026-11-23", "!!binary aGk="]
        ),
    ),
)
def test_any_value_for_a_key_is_accepted_or_refused_naming_the_file_and_line(
    run: CliRun, tmp_path: Path, key: str, value: str
) -> None:
    text = GOOD
    for line in GOOD.splitlines():
        if line.lstrip("- ").startswith(f"{key}:"):
            prefix = line[: line.index(key)]
            text = text.replace(line, f"{prefix}{key}: {value}", 1)
            break
    path = tmp_path / "value.yaml"
    path.write_text(text, encoding="utf-8")

    code, stderr = check(run, path)

    assert code in (0, 1)
    for error in stderr.splitlines():
        assert error.startswith(f"{path}:"), error


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_a_file_in_another_encoding_is_refused_naming_the_file(
    run: CliRun, tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "encoded.yaml"
    path.write_bytes(GOOD.replace("welcome home", "bienvenida, José").encode(encoding))

    code, stderr = check(run, path)

    assert code == 1
    assert stderr.startswith(f"{path}: error: cannot read the file")


def test_a_yaml_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    # Nine lists of nine aliases of the list before: a tiny file with 9**9 paths through it.
    # Marking each mapping and list with its file name walked every path (minutes).
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text(GOOD + "milestones:\n" + "".join(f"  {x}\n" for x in lines), encoding="utf-8")
    started = time.monotonic()

    with pytest.raises(ScheduleError, match=r"bomb\.yaml:\d+: "):
        load_timeline(path)

    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "document",
    [
        "name: &n [*n]\n",
        "!!python/object/apply:os.system ['true']\n",
        "name: !!python/name:os.system\n",
        "[" * 5000 + "]" * 5000 + "\n",
        "{? [a]: b}\n",
        "a: 1\na: 2\n",
        "---\nname: a\n---\nname: b\n",
    ],
    ids=["recursive", "python-object", "python-name", "deep", "complex-key", "duplicate", "two"],
)
def test_yaml_tricks_are_refused_naming_the_file(tmp_path: Path, document: str) -> None:
    path = tmp_path / "trick.yaml"
    path.write_text(document, encoding="utf-8")

    with pytest.raises(ScheduleError) as caught:
        load_timeline(path)

    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("version: 1", "version: 2147483648"), "version must be at most 2147483647"),
        (("name: hostile", "name: " + "a" * 65), "name is longer than 64 characters"),
        (("id: welcome", "id: " + "w" * 65), "step id is longer than 64 characters"),
        (('at: "+2h"', 'at: "day ' + "9" * 5000 + '"'), "at: "),
        (('at: "+2h"', 'at: "+' + "9" * 5000 + 'd"'), "at: "),
    ],
    ids=["version", "name", "step-id", "day-digits", "offset-digits"],
)
def test_values_past_what_the_database_holds_are_refused_at_check_time(
    run: CliRun, tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    # A file that loads but holds a version past a 32-bit integer (or a name past 64 characters)
    # would fail every enrollment later, with a database error instead of this line.
    path = tmp_path / "big.yaml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")

    code, stderr = check(run, path)

    assert code == 1
    (line,) = stderr.splitlines()
    assert line.startswith(f"{path}:") and says in line


def test_the_built_in_timelines_still_pass(run: CliRun) -> None:
    files = sorted(str(p) for p in builtin_dir().glob("[!_]*.yaml"))

    result = run("schedules", "check", *files)

    assert result.exit_code == 0, result.output


def test_a_yaml_file_that_is_only_a_bom_or_whitespace_is_refused(tmp_path: Path) -> None:
    for content in (b"\xef\xbb\xbf", b"   \n\n", b"", b"# only a comment\n"):
        path = tmp_path / "empty.yaml"
        path.write_bytes(content)
        with pytest.raises(ScheduleError, match="expected a mapping"):
            load_timeline(path)


def test_yaml_still_parses_what_it_should(tmp_path: Path) -> None:
    # The loader keeps a merge key (<<) working: files may share defaults by anchor.
    path = tmp_path / "merge.yaml"
    path.write_text(GOOD.replace("channels: [sms]", "<<: {channels: [sms]}"), encoding="utf-8")
    assert yaml.safe_load(path.read_text())["steps"][0]["channels"] == ["sms"]

    assert load_timeline(path).steps[0].channels == ("sms",)


@sqlite_only
@pytest.mark.parametrize(
    "expression",
    ["'x' * 10**9", "[0] * 10**8", "10**9 * 'ab'", "2 ** 10000000", "(first_name * 999999)"],
)
def test_a_template_that_would_build_a_huge_text_is_refused_not_rendered(
    run: CliRun, tmp_path: Path, expression: str
) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(GOOD.replace("welcome home,", f"{{{{ {expression} }}}} welcome home,"))

    code, stderr = check(run, path)

    assert code == 1
    assert "too large" in stderr or "at most 10000 items" in stderr
    assert_file_errors(stderr, path)
