"""bench/bench_peer.py at a tiny size: both sides schedule the same reminders, and each side's
texts reach the fake Twilio API exactly once, so the peer benchmark cannot silently rot."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import bench_peer
from bench.bench_peer import FakeApi
from bench.generate import write_file
from tests.fakes.twilio import FakeTwilio

PATIENTS = 20
SENT = 100


def _api(fake: FakeTwilio) -> FakeApi:
    return FakeApi(fake.url, fake.account_sid, fake.auth_token, fake.from_number)


def test_both_sides_schedule_the_same_reminders(tmp_path: Path, sqlite_template: Path) -> None:
    patients = write_file(tmp_path / "patients.csv", PATIENTS)
    target = shutil.copyfile(sqlite_template, tmp_path / "aftercare.db")

    ours = bench_peer.schedule_aftercare(patients, target)
    peer = bench_peer.schedule_peer(patients, tmp_path / "jobs.db")

    assert ours["reminders"] == peer["reminders"] == PATIENTS * 18
    assert bench_peer.check_schedules(ours, peer, PATIENTS) == []


def test_both_sides_send_each_text_once(
    tmp_path: Path, sqlite_template: Path, fake_twilio: FakeTwilio
) -> None:
    patients = write_file(tmp_path / "send.csv", SENT // bench_peer.SMS_PER_PATIENT + 1)
    target = shutil.copyfile(sqlite_template, tmp_path / "aftercare.db")

    ours = bench_peer.dispatch_aftercare(patients, target, _api(fake_twilio), SENT)
    fake_twilio.clear()
    peer = bench_peer.dispatch_peer(patients, tmp_path / "jobs.db", _api(fake_twilio), SENT)

    assert ours["sent"] == peer["sent"] == SENT
    assert ours["at_fake"] == peer["at_fake"] == len(fake_twilio.messages) == SENT
    assert bench_peer.check_dispatches(ours, peer) == []
