"""The built wheel is the whole program: installed on its own, ``aftercare`` works from any folder.

How it is installed, and why: a plain ``pip install <wheel>`` into a new, empty virtual
environment. Borrowing the dependencies from the development venv (``--no-deps`` plus a ``.pth``
file, or ``--system-site-packages``) would be a few seconds faster, but it would also let the
checkout's editable install and any package we forgot to declare stand in for the wheel; only a
clean install proves that the wheel's files *and* its declared dependencies are enough. pip takes
the dependencies from its cache or the configured index (about 25 s); the build itself is an
ordinary isolated ``python -m build --wheel`` (a few seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points back into the checkout."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    environment = {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("AFTERCARE_")
    }
    return environment | extra


def check(command: list[str | Path], cwd: Path, **extra: str) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=clean_environment(**extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only the wheel (and what it declares) installed."""
    folder = tmp_path_factory.mktemp("wheel")
    dist = folder / "dist"
    check([sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO], cwd=folder)
    (wheel,) = dist.glob("aftercare-*.whl")
    venv = folder / "venv"
    check([sys.executable, "-m", "venv", venv], cwd=folder)
    check([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=folder)
    return venv


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder that is not the repo, so nothing can be found relative to the checkout."""
    folder = tmp_path / "somewhere-else"
    folder.mkdir()
    return folder


def test_the_installed_package_is_the_wheels_not_the_checkouts(
    installed: Path, elsewhere: Path
) -> None:
    where = check(
        [installed / "bin" / "python", "-c", "import aftercare; print(aftercare.__file__)"],
        cwd=elsewhere,
    )

    assert Path(where.strip()).is_relative_to(installed)


def test_the_wheel_carries_the_timelines(installed: Path, elsewhere: Path) -> None:
    output = check([installed / "bin" / "aftercare", "schedules", "list"], cwd=elsewhere)

    assert "kyphoplasty" in output
    assert "vertebroplasty" in output


def test_the_wheel_carries_the_migrations(installed: Path, elsewhere: Path) -> None:
    database = elsewhere / "x.db"

    output = check(
        [installed / "bin" / "aftercare", "db", "upgrade"],
        cwd=elsewhere,
        AFTERCARE_DATABASE_URL=f"sqlite:///{database}",
    )

    assert output.startswith("database upgraded from empty to ")
    assert database.is_file()
