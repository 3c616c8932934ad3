"""``aftercare run`` killed with SIGKILL at one point inside it, for the crash matrix::

    python -m tests.crashpoints POINT N -- run [ARGS...]

installs a trap at POINT, then runs ``aftercare.cli.main(["run", ARGS...])`` in this process. The
Nth time the point is reached, the process sends itself SIGKILL: nothing is flushed, no handler
or ``finally`` runs, exactly as with ``kill -9`` or the OOM killer. A trap wraps a real function
(aftercare's, smtplib's, or SQLAlchemy's commit through its event hooks) and adds only the kill;
everything else runs unchanged, so no test hook lives in the production code.
"""

from __future__ import annotations

import functools
import os
import signal
import smtplib
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal, NoReturn

from sqlalchemy import event
from sqlalchemy.orm import Session

from aftercare import dispatch
from aftercare.channels.email import EmailChannel
from aftercare.channels.sms import SmsChannel
from aftercare.store import claims


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    while True:  # SIGKILL cannot be caught; this only waits for the kernel to deliver it
        time.sleep(1)


class Countdown:
    """True on the Nth hit, from any thread (sends run on the dispatcher's thread pool)."""

    def __init__(self, n: int) -> None:
        self.left = n
        self._lock = threading.Lock()

    def hit(self) -> bool:
        with self._lock:
            self.left -= 1
            return self.left == 0


def around(
    owner: Any,
    name: str,
    n: int,
    when: Literal["before", "after"],
    counts: Callable[..., bool] | None = None,
) -> None:
    """Kill on the Nth call of ``owner.name`` (that ``counts``, if given), just before the call
    or just after it returned."""
    original = getattr(owner, name)
    countdown = Countdown(n)

    @functools.wraps(original)
    def trapped(*args: Any, **kwargs: Any) -> Any:
        counted = counts is None or counts(*args, **kwargs)
        if when == "before" and counted and countdown.hit():
            die()
        result = original(*args, **kwargs)
        if when == "after" and counted and countdown.hit():
            die()
        return result

    setattr(owner, name, trapped)


def at_commit(
    owner: Any, name: str, n: int, when: Literal["before_commit", "after_commit"]
) -> None:
    """Kill as the Nth transaction in which ``owner.name(session, ...)`` ran commits: in
    SQLAlchemy's ``before_commit`` hook (nothing is committed yet) or ``after_commit`` (the
    database has it, the caller has not carried on)."""
    original = getattr(owner, name)
    sessions: weakref.WeakSet[Session] = weakref.WeakSet()
    countdown = Countdown(n)

    @functools.wraps(original)
    def marking(session: Session, *args: Any, **kwargs: Any) -> Any:
        sessions.add(session)
        return original(session, *args, **kwargs)

    def on_commit(session: Session) -> None:
        if session in sessions:
            sessions.discard(session)
            if countdown.hit():
                die()

    setattr(owner, name, marking)
    event.listen(Session, when, on_commit)


def _data_payload(_smtp: smtplib.SMTP, data: str | bytes) -> bool:
    """The message itself, as smtplib's ``data()`` sends it after the 354: it ends with the
    terminating dot (commands go through ``send`` too)."""
    return isinstance(data, bytes) and data.endswith(b"\r\n.\r\n")


# Each point installs its trap for the Nth time it is reached.
POINTS: dict[str, Callable[[int], None]] = {
    # Claiming due rows: in the transaction, or just after it committed (the rows are
    # ``sending``, no provider has been called).
    "claim:before-commit": lambda n: at_commit(claims, "claim_due", n, "before_commit"),
    "claim:after-commit": lambda n: at_commit(claims, "claim_due", n, "after_commit"),
    # Taking over stale rows for reconciliation, after a restart.
    "reconcile-claim:after-commit": lambda n: at_commit(claims, "claim_stale", n, "after_commit"),
    # A provider call: about to start, or returned with the provider's acceptance.
    "sms-send:before": lambda n: around(SmsChannel, "send", n, "before"),
    "sms-send:after": lambda n: around(SmsChannel, "send", n, "after"),
    "email-send:after": lambda n: around(EmailChannel, "send", n, "after"),
    # Inside the SMTP conversation: MAIL FROM or RCPT TO answered; the message about to be sent
    # after the 354, or sent with its final dot but the reply not read yet; the 250 read.
    "smtp-mail:after": lambda n: around(smtplib.SMTP, "mail", n, "after"),
    "smtp-rcpt:after": lambda n: around(smtplib.SMTP, "rcpt", n, "after"),
    "smtp-payload:before": lambda n: around(smtplib.SMTP, "send", n, "before", _data_payload),
    "smtp-payload:after": lambda n: around(smtplib.SMTP, "send", n, "after", _data_payload),
    "smtp-data:after": lambda n: around(smtplib.SMTP, "data", n, "after"),
    # Recording a batch's outcomes: the batch is back from the providers, not yet recorded;
    # recorded in the transaction but not committed; committed.
    "record:before": lambda n: around(dispatch, "record_results", n, "before"),
    "record:before-commit": lambda n: at_commit(dispatch, "record_results", n, "before_commit"),
    "record:after-commit": lambda n: at_commit(dispatch, "record_results", n, "after_commit"),
}


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--" or argv[0] not in POINTS:
        raise SystemExit(f"usage: python -m tests.crashpoints {{{'|'.join(POINTS)}}} N -- run ...")
    point, n, command = argv[0], int(argv[1]), argv[3:]
    POINTS[point](n)
    from aftercare.cli import main as aftercare_main

    sys.argv = ["aftercare", *command]
    aftercare_main()


if __name__ == "__main__":
    main(sys.argv[1:])
