"""``aftercare hl7 listen`` as the real process systemd runs: it refuses to start on bad settings
with one line, takes messages, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import adt
from tests.conftest import CliRun
from tests.mllp_client import MllpClient, msa

ROOT = Path(__file__).resolve().parent.parent


def test_listen_without_a_facility_zone_is_one_line_and_exit_1(run: CliRun):
    result = run("hl7", "listen", "--port", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: AFTERCARE_FACILITY_TIMEZONE: is required")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_procedure_map_naming_an_unknown_timeline_stops_the_start(run: CliRun, tmp_path: Path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text('CPT:\n  "27447": knee-replacement\n')
    run.app.settings = run.app.settings.with_overrides(
        facility_timezone="America/Chicago", hl7_map=mapping
    )
    result = run("hl7", "listen", "--port", "0")
    assert result.exit_code == 1
    assert "AFTERCARE_HL7_MAP" in result.stderr and "'knee-replacement'" in result.stderr


def test_the_listener_process_enrolls_and_stops_on_sigterm(tmp_path: Path, sqlite_template: Path):
    database = tmp_path / "aftercare.db"
    database.write_bytes(sqlite_template.read_bytes())
    log = tmp_path / "listener.log"
    env = os.environ | {
        "AFTERCARE_DATABASE_URL": f"sqlite:///{database}",
        "AFTERCARE_FACILITY_TIMEZONE": "America/Chicago",
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "aftercare", "hl7", "listen", "--port", "0"],
            env=env,
            stderr=stderr,
            cwd=ROOT,
        )
    try:
        port = _port(log, process)
        with MllpClient(("127.0.0.1", port)) as client:
            assert msa(client.send(adt.message(control_id="P-1")))[:2] == ["AA", "P-1"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert log.read_text().strip().splitlines()[-1] == "stopped: 1 messages, 0 framing errors"


def _port(log: Path, process: subprocess.Popen[bytes]) -> int:
    """The port the listener printed (it was asked for any free one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"on 127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)  # polling a child's start-up, not waiting for a schedule
    raise AssertionError("the listener did not start")
