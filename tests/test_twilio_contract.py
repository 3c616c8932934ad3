"""Contract: the requests SmsChannel makes are valid for Twilio's own OpenAPI description.

Prism (``@stoplight/prism-cli``, pinned in tools/package.json) mocks the 2010-04-01 API from the
spec and, with ``--errors``, answers a request that breaks it with 422 (401 without Basic auth)
instead of the documented 201. The channel reaches it the way production reaches Twilio:
through AFTERCARE_TWILIO_API_URL. The spec's server is https://api.twilio.com with no base path,
so Prism serves its paths at the root of its own URL.

Prism is installed into tools/node_modules on first use (``npm ci --prefix tools``, ~15 s) and
started once per test session (~3 s: the spec is 1.8 MB). Without npm the tests fail, saying
what to run; they never skip. The spec is vendored in tests/contract/ (MIT, with its licence and
source commit), or comes from AFTERCARE_TWILIO_OPENAPI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aftercare.channels.base import ChannelError, Outgoing
from aftercare.channels.sms import SmsChannel
from aftercare.config import Settings

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
PRISM = TOOLS / "node_modules" / ".bin" / "prism"
SPEC = Path(
    os.environ.get("AFTERCARE_TWILIO_OPENAPI", REPO / "tests/contract/twilio_api_v2010.json")
)
INSTALL_TIMEOUT = 300  # seconds; a cold npm cache on a slow network
START_TIMEOUT = 60
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2  # the spec's path pattern: AC + 32 hex digits
SERVICE_SID = "MG" + "0123456789abcdef" * 2


@dataclass
class Prism:
    url: str
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def pinned_version() -> str:
    manifest = json.loads((TOOLS / "package.json").read_text())
    version: str = manifest["devDependencies"]["@stoplight/prism-cli"]
    return version


def installed_version() -> str | None:
    manifest = TOOLS / "node_modules/@stoplight/prism-cli/package.json"
    if not (PRISM.exists() and manifest.exists()):
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def install_prism() -> None:
    """``npm ci`` from tools/package-lock.json, or fail saying what to run."""
    command = ["npm", "ci", "--prefix", str(TOOLS), "--no-audit", "--no-fund"]
    hint = f"Install Node.js 20+ and run: {' '.join(command[:4])}"
    if shutil.which("npm") is None:
        pytest.fail(f"Prism is not installed and npm is not on PATH. {hint}", pytrace=False)
    env = {**os.environ, "SCARF_ANALYTICS": "false"}  # a dependency's install-time telemetry
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm ci took over {INSTALL_TIMEOUT} s. {hint}", pytrace=False)
    if done.returncode != 0 or installed_version() is None:
        output = (done.stdout + done.stderr)[-2000:]
        pytest.fail(f"installing Prism failed:\n{output}\n{hint}", pytrace=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(process: subprocess.Popen[bytes], port: int, prism: Prism) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Prism exited at start:\n{prism.log_tail()}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"Prism did not listen within {START_TIMEOUT} s:\n{prism.log_tail()}")


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """Prism mocking the Twilio 2010-04-01 spec with request validation, for the session."""
    if not SPEC.is_file():
        pytest.fail(
            f"Twilio's OpenAPI spec is not at {SPEC}; set AFTERCARE_TWILIO_OPENAPI to "
            "twilio_api_v2010.json (github.com/twilio/twilio-oai, spec/json/).",
            pytrace=False,
        )
    if installed_version() != pinned_version():
        install_prism()
    port = free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    command = [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors", str(SPEC)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    server = Prism(f"http://127.0.0.1:{port}", log)
    try:
        wait_until_listening(process, port, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def make_channel(prism: Prism) -> Iterator[Callable[..., SmsChannel]]:
    """Factory: an SmsChannel whose AFTERCARE_TWILIO_API_URL is Prism."""
    channels: list[SmsChannel] = []

    def make(**settings: str) -> SmsChannel:
        base = {
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": "contract-test-token",
            "twilio_from_number": "+15005550006",
            "twilio_api_url": prism.url,
        }
        channels.append(SmsChannel(Settings(**(base | settings))))
        return channels[-1]

    yield make
    for channel in channels:
        channel.close()


def reminder(**fields: str) -> Outgoing:
    values: dict[str, Any] = {
        "message_id": 1,
        "channel": "sms",
        "to": "+12025550143",
        "text": "Spine Care Clinic: you may shower today. Reply STOP to opt out.",
        "language": "en",
        "status_callback": "https://clinic.example.org/webhooks/twilio/status",
        "first_attempt_at": datetime.now(UTC),
    }
    return Outgoing(**(values | fields))


def send_or_fail(channel: SmsChannel, message: Outgoing, prism: Prism) -> str | None:
    try:
        return channel.send(message).provider_id
    except ChannelError as exc:
        pytest.fail(f"Prism refused the request ({exc}); its log:\n{prism.log_tail()}")


def test_a_text_from_our_number_matches_twilios_create_message(
    make_channel: Callable[..., SmsChannel], prism: Prism
) -> None:
    sid = send_or_fail(make_channel(), reminder(), prism)

    assert sid is not None and sid.startswith("SM")


def test_a_text_through_a_messaging_service_matches_twilios_create_message(
    make_channel: Callable[..., SmsChannel], prism: Prism
) -> None:
    channel = make_channel(twilio_messaging_service_sid=SERVICE_SID)

    sid = send_or_fail(channel, reminder(), prism)

    assert sid is not None and sid.startswith("SM")


def test_prism_does_refuse_a_request_that_breaks_the_spec(
    make_channel: Callable[..., SmsChannel],
) -> None:
    """The control: were Prism to accept anything, the tests above would prove nothing."""
    with pytest.raises(ChannelError) as caught:
        make_channel().send(reminder(status_callback="not a url"))

    assert (caught.value.code, caught.value.permanent) == ("422", True)


def test_the_lookup_after_a_crash_is_a_valid_list_request(
    make_channel: Callable[..., SmsChannel], prism: Prism
) -> None:
    """Prism checks the request first (422 when it breaks the spec). Its example answer for this
    list then fails its own response check (relative URIs where the spec says format "uri"), so
    a valid request gets a 500 here, which is fine."""
    try:
        make_channel().find_sent(reminder())
    except ChannelError as exc:
        assert exc.code not in {"422", "401"}, prism.log_tail()
