"""The errors a user may see. Each renders as one line that names what is wrong."""

from __future__ import annotations


class AftercareError(Exception):
    """Base for errors that are the user's to fix; the CLI prints them and exits 1."""


class SettingsError(AftercareError):
    """A setting from the environment (or a flag standing in for it) has a bad value."""


class InputError(AftercareError):
    """One field of user input is wrong: ``field: problem``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ScheduleError(AftercareError):
    """A timeline file is wrong: ``file:line: reason``."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class NotFoundError(AftercareError):
    """An id given on the command line names nothing."""
