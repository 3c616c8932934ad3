"""The MLLP listener over real TCP: ADT messages enroll, cancel, update and merge patients, once
each, and nothing a sender does on the wire stops the listener."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aftercare.app import App
from aftercare.clock import ManualClock
from aftercare.intake.mllp import END, START, Listener
from aftercare.intake.setup import hl7_service
from aftercare.models import Hl7Message
from tests import adt
from tests.conftest import CliRun
from tests.mllp_client import MllpClient, err, msa

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "adt"


@pytest.fixture
def listener(app: App) -> Iterator[Listener]:
    app.settings = app.settings.with_overrides(facility_timezone="America/Chicago")
    running = Listener("127.0.0.1", 0, hl7_service(app), idle_timeout=30).start()
    yield running
    running.stop()


def patients(run: CliRun) -> list[dict[str, Any]]:
    result = run("patients", "list", "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def show(run: CliRun, enrollment_id: int) -> dict[str, Any]:
    result = run("patients", "show", str(enrollment_id), "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def example(name: str) -> str:
    return (EXAMPLES / name).read_text().replace("\n", "\r")


def test_a_discharge_enrolls_the_patient_and_is_acknowledged(listener: Listener, run: CliRun):
    with MllpClient(listener.address) as client:
        ack = client.send(example("a03-kyphoplasty.hl7"))
    assert msa(ack)[:2] == ["AA", "GEN-A03-0001"]
    assert ack.startswith("MSH|^~\\&|AFTERCARE|SPINE|EPIC|GENERAL|")
    (enrolled,) = patients(run)
    detail = show(run, enrolled["id"])
    assert (detail["external_id"], detail["procedure"]) == ("MRN0042", "kyphoplasty")
    assert (detail["phone"], detail["email"]) == ("+12025550143", "ana@example.org")
    assert (detail["timezone"], detail["language"]) == ("America/Chicago", "es")
    assert detail["discharged_at"] == "2026-11-23T16:30:00Z"
    assert detail["messages"], "the timeline is planned"
    assert detail["history"][0]["actor"] == "hl7:EPIC^GENERAL"


def test_several_messages_on_one_connection_enroll_update_and_cancel(
    listener: Listener, run: CliRun
):
    with MllpClient(listener.address) as client:
        acks = [
            client.send(example(name))
            for name in ("a03-kyphoplasty.hl7", "a08-new-mobile.hl7", "a13-cancel-discharge.hl7")
        ]
    assert [msa(a)[0] for a in acks] == ["AA", "AA", "AA"]
    (enrolled,) = patients(run)
    detail = show(run, enrolled["id"])
    assert detail["phone"] == "+12025550199"
    assert detail["status"] == "cancelled"
    assert detail["status_reason"] == "the hospital cancelled the discharge"
    kinds = [e["kind"] for e in detail["history"]]
    assert "contact_edited" in kinds and "cancelled" in kinds
    assert all(m["status"] == "cancelled" for m in detail["messages"])


def test_a_resent_control_id_gets_the_same_ack_and_changes_nothing(
    listener: Listener, run: CliRun, row_counts: Callable[[], dict[str, int]]
):
    with MllpClient(listener.address) as client:
        first = client.send(example("a03-kyphoplasty.hl7"))
        counts = row_counts()
    with MllpClient(listener.address) as client:
        again = client.send(example("a03-kyphoplasty.hl7"))
    assert again == first
    after = row_counts()
    assert after["enrollment"] == counts["enrollment"] == 1
    assert after["message"] == counts["message"]
    assert after["hl7_message"] == 1


def test_a_control_id_reused_for_another_message_is_an_error(listener: Listener, run: CliRun):
    with MllpClient(listener.address) as client:
        client.send(adt.message(control_id="X-1"))
        ack = client.send(adt.message(control_id="X-1", pid={3: "MRN7^^^GENERAL^MR"}))
    assert msa(ack)[0] == "AE"
    assert "MSH-10" in msa(ack)[2]
    assert len(patients(run)) == 1


def test_an_invalid_phone_is_answered_ae_naming_pid_13_and_nothing_is_written(
    listener: Listener, row_counts: Callable[[], dict[str, int]]
):
    with MllpClient(listener.address) as client:
        ack = client.send(adt.message(pid={13: "^PRN^CP^^^^12"}))
    code, control_id, text = msa(ack)
    assert (code, control_id) == ("AE", "CTRL-1")
    assert text.startswith("PID-13: ")
    assert err(ack)[1:4] == ["PID^1^13", f"102^{text}^HL70357", "E"]
    counts = row_counts()
    assert (counts["patient"], counts["enrollment"], counts["message"]) == (0, 0, 0)


def test_a_message_naming_no_procedure_is_answered_ae(listener: Listener):
    with MllpClient(listener.address) as client:
        ack = client.send(adt.message(procedure=False))
    assert msa(ack)[0] == "AE"
    assert msa(ack)[2].startswith("PR1-3: ")
    assert err(ack)[2].startswith("101^")


def test_a_procedure_the_clinic_does_not_follow_is_acknowledged_ignored_and_counted(
    listener: Listener, run: CliRun
):
    with MllpClient(listener.address) as client:
        ack = client.send(example("a03-not-followed.hl7"))
    assert msa(ack)[0] == "AA"
    assert patients(run) == []
    result = run("hl7", "stats", "--json")
    assert json.loads(result.output) == {"ignored": 1}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("this is not HL7", "207"),
        ("MSH|^~\\&|LAB|GENERAL|AFTERCARE|SPINE|20261123||ORU^R01^ORU_R01|L-1|P|2.5\r", "200"),
    ],
)
def test_what_cannot_be_processed_is_answered_ar(listener: Listener, payload: str, code: str):
    with MllpClient(listener.address) as client:
        ack = client.send(payload)
        assert msa(ack)[0] == "AR"
        assert err(ack)[2].startswith(f"{code}^")
        assert msa(client.send(adt.message()))[0] == "AA"  # and the connection goes on


def test_framing_errors_mid_stream_are_skipped_and_the_next_message_is_acknowledged(
    listener: Listener, run: CliRun
):
    with MllpClient(listener.address) as client:
        client.send_raw(b"garbage before any frame\r")
        client.send_raw(START + b"MSH|^~\\&|half a message")  # restarted before it ended
        ack = client.send(adt.message(control_id="AFTER-JUNK"))
    assert msa(ack)[:2] == ["AA", "AFTER-JUNK"]
    assert listener.counters.framing_errors == 2
    assert len(patients(run)) == 1


def test_a_half_closed_socket_still_gets_its_ack(listener: Listener):
    sock = socket.create_connection(listener.address, timeout=10)
    sock.sendall(START + adt.message().encode() + END)
    sock.shutdown(socket.SHUT_WR)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    assert b"MSA|AA|CTRL-1" in received
    with MllpClient(listener.address) as client:  # the listener still takes new connections
        assert msa(client.send(adt.message(control_id="NEXT")))[0] == "AA"


def test_a_stalled_sender_holds_up_nobody_else(listener: Listener):
    stalled = socket.create_connection(listener.address, timeout=10)
    stalled.sendall(START + b"MSH|^~\\&|EPIC|GENERAL|AFTERCARE|SPINE|2026")  # and nothing more
    try:
        with MllpClient(listener.address, timeout=5) as client:
            assert msa(client.send(adt.message()))[0] == "AA"
    finally:
        stalled.close()


def test_a_merge_moves_the_prior_records_enrollments_to_the_surviving_mrn(
    listener: Listener, run: CliRun
):
    with MllpClient(listener.address) as client:
        client.send(adt.message(control_id="M-1", pid={3: "TMP-7781^^^GENERAL^MR"}))
        ack = client.send(example("a40-merge.hl7"))
    assert msa(ack)[0] == "AA"
    (enrolled,) = patients(run)
    assert enrolled["external_id"] == "MRN0042"
    assert "patients_merged" in [e["kind"] for e in show(run, enrolled["id"])["history"]]


def test_a_hundred_messages_from_ten_connections_at_once_enroll_each_patient_once(
    listener: Listener, run: CliRun
):
    def one_connection(n: int) -> list[str]:
        with MllpClient(listener.address) as client:
            codes = []
            for i in range(10):
                mrn = f"MRN{n}{i:02d}"
                text = adt.message(control_id=f"C-{n}-{i}", pid={3: f"{mrn}^^^GENERAL^MR"})
                codes.append(msa(client.send(text))[0])
            # Each connection also resends the first message of the next one's batch.
            other = (n + 1) % 10
            resend = adt.message(control_id=f"C-{other}-0", pid={3: f"MRN{other}00^^^GENERAL^MR"})
            codes.append(msa(client.send(resend))[0])
            return codes

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one_connection, range(10)))
    assert all(code == "AA" for codes in results for code in codes)
    enrolled = patients(run)
    assert len(enrolled) == 100
    assert len({e["external_id"] for e in enrolled}) == 100


def test_the_audit_log_has_every_message_by_control_id_and_the_logs_have_no_patient_data(
    listener: Listener, run: CliRun, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    with MllpClient(listener.address) as client:
        client.send(example("a03-kyphoplasty.hl7"))
        client.send(adt.message(control_id="BAD-PHONE", pid={13: "^PRN^CP^^^^12"}))
        client.send("not hl7 at all")
    result = run("audit", "--since", "7d", "--json")
    events = json.loads(result.output)
    seen = {(e["kind"], (e["detail"] or {}).get("control_id")) for e in events}
    assert ("hl7_received", "GEN-A03-0001") in seen
    assert ("hl7_received", "BAD-PHONE") in seen
    assert ("hl7_rejected", None) in seen
    logged = "\n".join(
        r.getMessage() + json.dumps(getattr(r, "fields", {})) for r in caplog.records
    )
    assert "GEN-A03-0001" in logged
    for secret in ("Ana", "Garcia", "5550143", "ana@example.org", "MRN0042"):
        assert secret not in logged


def test_purge_clears_the_visit_numbers_kept_for_cancels(
    listener: Listener, run: CliRun, app: App, clock: ManualClock
):
    with MllpClient(listener.address) as client:
        client.send(example("a03-kyphoplasty.hl7"))
        client.send(example("a13-cancel-discharge.hl7"))
    clock.advance(timedelta(days=400))
    result = run("purge", "--older-than", "365d")
    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        visits = session.scalars(select(Hl7Message.visit)).all()
    assert visits == [None, None]


def test_a_merge_of_two_enrolled_records_moves_enrollments_and_cancels_the_duplicate(
    listener: Listener, run: CliRun
):
    survivor = {3: "MRN0042^^^GENERAL^MR"}
    prior = {3: "TMP-7781^^^GENERAL^MR"}
    with MllpClient(listener.address) as client:
        client.send(adt.message(control_id="S-1", pid=survivor))
        client.send(adt.message(control_id="P-1", pid=prior))  # the same discharge, twice
        client.send(adt.message(control_id="P-2", pid=prior, pr1={3: "22511^x^CPT4"}))
        ack = client.send(example("a40-merge.hl7"))
    assert msa(ack)[0] == "AA"
    listed = sorted((e["status"], e["procedure"], e["external_id"] or "") for e in patients(run))
    assert listed == [
        ("active", "kyphoplasty", "MRN0042"),
        ("active", "vertebroplasty", "MRN0042"),  # moved to the surviving MRN
        ("cancelled", "kyphoplasty", ""),  # the duplicate, left on the emptied record
    ]
    with MllpClient(listener.address) as client:  # and the survivor is the one found by MRN
        again = client.send(adt.message(control_id="S-2", pid=survivor))
    assert msa(again)[0] == "AA"
    assert len(patients(run)) == 3
