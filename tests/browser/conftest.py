"""Browser tests: real Chromium (Debian's package, driven by Playwright; no browser download)
against the console under the real waitress server, on a migrated SQLite database.

The server runs in this process so that it shares the test's manual clock: the idle timeout is
tested by moving the clock, not by waiting fifteen minutes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from aftercare.accounts import service
from tests.console import PASSWORD, RunningConsole

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
            "scripts/test does this when it can",
            pytrace=False,
        )
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        # Root in a container has no user namespaces for Chromium's sandbox; the rest keeps the
        # browser from reaching out (updates, sync, GPU probing) on a machine with no network.
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """Browser tests run on SQLite only: what they check is the page, not the backend."""
    path = tmp_path / "aftercare.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sign_in(
    console: RunningConsole, page: Page, make_staff: Callable[..., service.StaffAccount]
) -> Callable[..., service.StaffAccount]:
    """Function: makes an account with the given role and signs in to it in ``page``."""

    def as_role(role: str = "nurse", email: str | None = None) -> service.StaffAccount:
        account = make_staff(
            email or f"{role}@clinic.example", role=role, name=f"Sam {role.title()}"
        )
        page.goto(console.url + "/login")
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return account

    return as_role


@pytest.fixture
def screens(tmp_path: Path) -> Iterator[Path]:
    """Where a test may save screenshots to look at."""
    yield tmp_path
