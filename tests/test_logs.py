"""Minimum necessary: a whole day of work at DEBUG level leaves no patient data in the logs."""

from __future__ import annotations

import json
import logging
import random

from aftercare import logs
from aftercare.channels.email import EmailChannel
from aftercare.channels.sms import SmsChannel
from aftercare.dispatch import Dispatcher
from tests.factories import enroll

NAME, PHONE, EMAIL = "Zebulon", "+12025550188", "zebulon.q@example.org"


def test_sending_and_replies_log_no_names_numbers_addresses_or_bodies(
    web, clock, fake_twilio, smtp_server, caplog
):
    logs.quiet_libraries()  # as `aftercare run` and `serve` set logging up
    caplog.set_level(logging.DEBUG)
    app = web.app
    app.settings = fake_twilio.settings(
        app.settings,
        smtp_url=smtp_server.url,
        email_from="care@example.org",
        staff_email="nurses@example.org",
    )
    enroll(app, clock.now(), first_name=NAME, phone=PHONE, email=EMAIL)
    clock.set(clock.now().replace(hour=18))
    channels = {"sms": SmsChannel(app.settings), "email": EmailChannel(app.settings)}
    dispatcher = Dispatcher(
        app.sessions, channels, app.catalog, app.settings, clock, "w", rng=random.Random(1)
    )
    try:
        dispatcher.dispatch_due()
    finally:
        dispatcher.close()
    sid = fake_twilio.messages[0].sid
    web.signed_post("/webhooks/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"})
    reply = "I have a fever and numbness since this morning"
    web.signed_post(
        "/webhooks/twilio/inbound", {"MessageSid": "SM" + "1" * 32, "From": PHONE, "Body": reply}
    )
    web.signed_post(
        "/webhooks/twilio/inbound", {"MessageSid": "SM" + "2" * 32, "From": PHONE, "Body": "STOP"}
    )
    assert len(fake_twilio.messages) == 1 and len(smtp_server.messages) >= 1
    # The fake SMTP server is the test's, not ours: its protocol log shows the mail, as a real
    # relay's would. Everything else in the process is aftercare, the SDK and their libraries.
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in ours)
    assert "inbound reply id=" in text and "status callback" in text  # the logs were captured
    for secret in (
        NAME,
        PHONE,
        PHONE[2:],
        "%2B1202555",
        EMAIL,
        "fever and numbness",
        "Keep the bandage on",
    ):
        assert secret not in text, secret


def test_json_logs_are_one_object_per_line():
    record = logging.LogRecord(
        "aftercare.dispatch", logging.INFO, __file__, 1, "dispatched %s", ("sent=3",), None
    )
    line = logs.JsonFormatter().format(record)
    assert json.loads(line) | {"at": "x"} == {
        "at": "x",
        "level": "info",
        "logger": "aftercare.dispatch",
        "event": "dispatched sent=3",
    }
