"""Soak, trimmed for CI: the real ``aftercare run`` and ``aftercare serve`` processes on one SQLite
file for ten seconds of steady enrollments, status callbacks and replies (the harness of
``bench/bench_soak.py``; its full run lasts minutes and writes bench/README.md).

The invariants are the benchmark's: every text reached the fake Twilio exactly once or was
suppressed by a STOP, every final callback and every reply is in the database, every answer was
200, nothing was logged at ERROR, the backlog drained and did not grow, and memory grew little
from the first window after warm-up to the last. The memory limit is loose (windows of two
seconds, a shared CI machine): it catches a leak of megabytes a second, not a slow one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_soak import REPLY_CYCLE, Profile, soak

CI = Profile(
    load_seconds=10,
    steps=(2, 3, 4),  # every step a poll or more ahead, so the daemon sees it before it is due
    window_seconds=2,  # after warm-up: 4-6 s; last: 8-10 s
    enrollments_per_second=4,
    replies_per_second=2,  # from 3 s on: every kind of reply at least once
    poll=1,
    sample_every=0.5,
    rss_growth_mb=40,
    rss_growth_share=0.5,
)


@pytest.mark.slow
def test_daemon_and_server_under_a_steady_load_lose_nothing_and_stay_flat(
    tmp_path: Path,
) -> None:
    result = soak(CI, tmp_path)

    logs = "\n".join(
        f"--- {name} log (last lines):\n" + "\n".join(path.read_text().splitlines()[-20:])
        for name, path in (("daemon", tmp_path / "daemon.log"), ("server", tmp_path / "server.log"))
    )
    assert result.problems() == [], logs
    end, journal = result.end, result.journal
    assert end.patients >= 36 and end.messages == 3 * end.patients  # 4 a second for 10 s
    assert end.sent > end.messages / 2 and end.suppressed > 0  # STOPs and landlines took effect
    assert len(journal.final) == end.sent  # a callback for every text that went out
    assert len(journal.replies) >= len(REPLY_CYCLE) and end.replies_stored == len(journal.replies)
    assert result.last.per_second["texts"] > 0 and result.last.per_second["callbacks"] > 0
