"""The email channel against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from aftercare import ics
from aftercare.channels.base import Attachment, ChannelError, Outgoing
from aftercare.channels.email import CONNECTIONS, EmailChannel
from aftercare.channels.email_message import html_page
from aftercare.config import Settings
from aftercare.errors import SettingsError
from aftercare.smtpurl import parse_smtp_url
from tests.fakes.smtp import FakeSmtpServer

SENDER = "care@clinic.example.org"
PATIENT = "ana@example.org"
UNSUBSCRIBE = "https://aftercare.clinic.example.org/unsubscribe/1234.email.Zm9vYmFyYmF6cXV4cXV1eA"
BODY = """Hello Ana,

Welcome home. Here is how to look after yourself over the next few weeks.

- Keep the bandage on for two days.
- You may feel sore where the needle went in. Applying ice to the area can help.
  This soreness should be gone within two to three days.

Spine Care Clinic
+1 555 010 0199"""


@pytest.fixture
def make_channel() -> Iterator[Callable[[str], EmailChannel]]:
    opened: list[EmailChannel] = []

    def make(url: str) -> EmailChannel:
        channel = EmailChannel(Settings(smtp_url=url, email_from=SENDER))
        opened.append(channel)
        return channel

    yield make
    for channel in opened:
        channel.close()


@pytest.fixture
def channel(
    make_channel: Callable[[str], EmailChannel], smtp_server: FakeSmtpServer
) -> EmailChannel:
    return make_channel(smtp_server.url)


def outgoing(**overrides: Any) -> Outgoing:
    fields: dict[str, Any] = {
        "message_id": 42,
        "channel": "email",
        "to": PATIENT,
        "text": BODY,
        "subject": "Your care at home",
        "language": "en",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    return Outgoing(**(fields | overrides))


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, page = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and page is not None
    return plain.get_content(), page.get_content()


def refusal(send: Callable[[], object]) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        send()
    return caught.value


# --- what arrives ----------------------------------------------------------------------------


def test_the_message_arrives_with_envelope_and_headers(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    receipt = channel.send(outgoing())

    [received] = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == (SENDER, (PATIENT,))
    mail = received.message
    assert mail["From"].addresses[0].addr_spec == SENDER
    assert mail["From"].addresses[0].display_name == "Spine Care Clinic"
    assert (mail["To"], mail["Subject"]) == (PATIENT, "Your care at home")
    assert mail["Message-ID"] == "<aftercare.42@clinic.example.org>"
    assert mail["Date"].datetime.tzinfo is not None
    assert (mail["Content-Language"], mail["Auto-Submitted"]) == ("en", "auto-generated")
    assert receipt.provider_id == "<aftercare.42@clinic.example.org>"


def test_the_message_id_is_the_same_on_every_send_of_one_row(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(message_id=7))
    channel.send(outgoing(message_id=7))
    channel.send(outgoing(message_id=8))

    ids = [received.message["Message-ID"] for received in smtp_server.messages]
    assert ids == ["<aftercare.7@clinic.example.org>"] * 2 + ["<aftercare.8@clinic.example.org>"]


def test_one_click_unsubscribe_follows_rfc_8058_and_is_never_folded(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing())

    [received] = smtp_server.messages
    assert received.message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in received.raw
    plain, page = parts(received.message)
    assert UNSUBSCRIBE in plain
    assert f'<a href="{UNSUBSCRIBE}">' in page


def test_without_an_unsubscribe_url_there_are_no_list_headers_or_footer(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(unsubscribe_url=None))

    [received] = smtp_server.messages
    assert "List-Unsubscribe" not in received.message
    assert "List-Unsubscribe-Post" not in received.message
    assert "unsubscribe" not in parts(received.message)[1]


def test_the_text_comes_with_an_html_alternative(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing())

    mail = smtp_server.messages[0].message
    assert mail.get_content_type() == "multipart/alternative"
    plain, page = parts(mail)
    assert plain.startswith(BODY)
    assert "<li>Keep the bandage on for two days.</li>" in page
    assert '<html lang="en">' in page


def test_the_html_part_escapes_what_the_text_holds(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(text="Hello <b>x</b> & co,\n\nSee you soon.", subject="<i>hi</i>"))

    plain, page = parts(smtp_server.messages[0].message)
    assert "Hello <b>x</b> & co," in plain
    assert "<p>Hello &lt;b&gt;x&lt;/b&gt; &amp; co,</p>" in page
    assert "<b>" not in page and "<i>" not in page


def test_spanish_text_arrives_as_written(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    text = "Hola, Begoña:\n\nPuede quitarse el vendaje el miércoles, 25 de noviembre."
    channel.send(outgoing(text=text, subject="Su vendaje: ¿cómo está?", language="es"))

    mail = smtp_server.messages[0].message
    assert mail["Subject"] == "Su vendaje: ¿cómo está?"
    assert mail["Content-Language"] == "es"
    plain, _ = parts(mail)
    assert plain.startswith(text)
    assert "Para dejar de recibir estos recordatorios" in plain
    assert smtp_server.messages[0].raw.isascii()  # 7-bit clean for any relay


def test_a_calendar_attachment_arrives_intact(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    data = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nSUMMARY:Caf\xc3\xa9\\, ok\r\nEND:VCALENDAR\r\n"
    channel.send(outgoing(attachments=(ics.attachment(data),)))

    mail = smtp_server.messages[0].message
    assert mail.get_content_type() == "multipart/mixed"
    [attached] = list(mail.iter_attachments())
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_param("method") == "PUBLISH"
    assert attached.get_filename() == "aftercare.ics"
    assert attached.get_payload(decode=True) == data
    assert parts(mail)[0].startswith(BODY)


def test_attachments_of_any_type_are_kept(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    pdf = Attachment("guide.pdf", "application/pdf", b"%PDF-1.4\x00\xff")
    channel.send(outgoing(attachments=(pdf,)))

    [attached] = list(smtp_server.messages[0].message.iter_attachments())
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_payload(decode=True) == pdf.data


def test_email_cannot_be_looked_up_after_a_crash(channel: EmailChannel) -> None:
    assert channel.find_sent(outgoing()) is None


# --- login and TLS ---------------------------------------------------------------------------


def test_it_logs_in_with_percent_encoded_credentials(
    make_smtp_server: Callable[..., FakeSmtpServer], make_channel: Callable[[str], EmailChannel]
) -> None:
    server = make_smtp_server(username="aftercare", password="p@ss:w/rd%")
    assert "p%40ss%3Aw%2Frd%25" in server.url

    make_channel(server.url).send(outgoing())

    assert server.messages[0].login == "aftercare"


def test_a_refused_login_is_transient(
    make_smtp_server: Callable[..., FakeSmtpServer], make_channel: Callable[[str], EmailChannel]
) -> None:
    server = make_smtp_server(username="aftercare", password="right")
    channel = make_channel(server.url.replace(":right@", ":wrong@"))

    error = refusal(lambda: channel.send(outgoing()))

    assert (error.permanent, error.code) == (False, "SMTP 535")
    assert "wrong" not in str(error)
    assert server.messages == []


def test_a_relay_that_demands_a_login_it_did_not_get_is_transient(
    make_smtp_server: Callable[..., FakeSmtpServer], make_channel: Callable[[str], EmailChannel]
) -> None:
    server = make_smtp_server(username="aftercare", password="right")
    channel = make_channel(f"smtp://127.0.0.1:{server.port}")

    error = refusal(lambda: channel.send(outgoing()))

    assert (error.permanent, error.code) == (False, "SMTP 530")


def test_starttls_with_a_trusted_self_signed_certificate(
    make_smtp_server: Callable[..., FakeSmtpServer], make_channel: Callable[[str], EmailChannel]
) -> None:
    # auth_require_tls: the server offers AUTH only after STARTTLS, so the login proves the order.
    server = make_smtp_server(
        tls="starttls", username="aftercare", password="secret", auth_require_tls=True
    )

    make_channel(server.url).send(outgoing())

    [received] = server.messages
    assert (received.encrypted, received.login) == (True, "aftercare")


def test_smtps_with_a_trusted_self_signed_certificate(
    make_smtp_server: Callable[..., FakeSmtpServer], make_channel: Callable[[str], EmailChannel]
) -> None:
    server = make_smtp_server(tls="smtps", username="aftercare", password="secret")

    make_channel(server.url).send(outgoing())

    [received] = server.messages
    assert (received.encrypted, received.login) == (True, "aftercare")


@pytest.mark.parametrize("tls", ["smtps", "starttls"])
def test_a_certificate_that_is_not_trusted_is_refused(
    tls: str,
    make_smtp_server: Callable[..., FakeSmtpServer],
    make_channel: Callable[[str], EmailChannel],
) -> None:
    server = make_smtp_server(tls=tls)
    url = server.url.split("cafile=")[0].rstrip("?&")  # the system's CAs do not know it

    error = refusal(lambda: make_channel(url).send(outgoing()))

    assert (error.permanent, error.code) == (False, "TLS")
    assert server.messages == []


def test_it_never_falls_back_to_plain_text_when_starttls_is_asked_for(
    smtp_server: FakeSmtpServer, make_channel: Callable[[str], EmailChannel]
) -> None:
    channel = make_channel(f"{smtp_server.url}?starttls=true")

    error = refusal(lambda: channel.send(outgoing()))

    assert (error.permanent, error.code) == (False, "SMTP unsupported")
    assert smtp_server.messages == []


# --- refusals and outages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "command", "permanent"),
    [(451, "RCPT", False), (550, "RCPT", True), (451, "DATA", False), (554, "DATA", True)],
)
def test_4xx_replies_are_transient_and_5xx_permanent(
    reply: int,
    command: Any,
    permanent: bool,
    channel: EmailChannel,
    smtp_server: FakeSmtpServer,
) -> None:
    smtp_server.fail_next(reply, on=command)

    error = refusal(lambda: channel.send(outgoing()))

    assert (error.permanent, error.code) == (permanent, f"SMTP {reply}")
    assert smtp_server.messages == []


def test_errors_never_quote_the_address_the_relay_echoes(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    smtp_server.fail_next(f"550 5.1.1 <{PATIENT}>: Recipient address rejected")

    error = refusal(lambda: channel.send(outgoing()))

    assert str(error) == "SMTP relay refused the recipient: 550 5.1.1"
    assert error.__suppress_context__


def test_the_message_after_a_refusal_goes_through(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    smtp_server.fail_next(451)
    refusal(lambda: channel.send(outgoing(message_id=1)))

    channel.send(outgoing(message_id=2))

    assert [r.message["Message-ID"] for r in smtp_server.messages] == [
        "<aftercare.2@clinic.example.org>"
    ]


def test_a_relay_that_is_down_is_transient_and_used_again_when_back(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(message_id=1))
    smtp_server.stop()

    error = refusal(lambda: channel.send(outgoing(message_id=2)))
    smtp_server.start()
    channel.send(outgoing(message_id=3))

    assert (error.permanent, error.code) == (False, "connection")
    assert len(smtp_server.messages) == 2


def test_a_connection_the_relay_closed_while_idle_is_replaced(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(message_id=1))
    smtp_server.stop()  # drops the connection the channel keeps
    smtp_server.start()

    channel.send(outgoing(message_id=2))

    assert len(smtp_server.messages) == 2


def test_a_kept_connection_the_relay_retires_with_421_is_replaced_at_once(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    channel.send(outgoing(message_id=1))
    smtp_server.fail_next(421, on="DATA")  # e.g. "too many messages on this connection"

    channel.send(outgoing(message_id=2))

    assert len(smtp_server.messages) == 2


def test_a_relay_that_never_answers_times_out(make_channel: Callable[[str], EmailChannel]) -> None:
    with socket.socket() as silent:  # listens, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        channel = make_channel(f"smtp://127.0.0.1:{port}?timeout=0.2")

        error = refusal(lambda: channel.send(outgoing()))

    assert (error.permanent, error.code) == (False, "timeout")


def test_fifty_sends_from_four_threads_all_arrive(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    with ThreadPoolExecutor(4) as pool:
        receipts = list(pool.map(lambda n: channel.send(outgoing(message_id=n)), range(50)))

    arrived = {r.message["Message-ID"] for r in smtp_server.messages}
    assert len(smtp_server.messages) == 50
    assert arrived == {r.provider_id for r in receipts}
    assert len(arrived) == 50


def test_sixty_four_threads_share_a_few_connections_and_each_email_arrives_once(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    with ThreadPoolExecutor(64) as pool:
        receipts = list(pool.map(lambda n: channel.send(outgoing(message_id=n)), range(200)))

    arrived = [r.message["Message-ID"] for r in smtp_server.messages]
    assert sorted(arrived) == sorted(r.provider_id for r in receipts)
    assert len(set(arrived)) == 200
    assert len({r.client_port for r in smtp_server.messages}) <= CONNECTIONS


# --- the URL and the HTML --------------------------------------------------------------------


def test_the_smtp_url_picks_ports_by_scheme_and_decodes_credentials() -> None:
    assert parse_smtp_url("smtp://relay").port == 25
    assert parse_smtp_url("smtp://relay?starttls=true").port == 587
    target = parse_smtp_url("smtps://me%40clinic:p%3Ass@relay?cafile=/ca.pem&timeout=5")
    assert (target.port, target.implicit_tls, target.starttls) == (465, True, False)
    assert (target.username, target.password) == ("me@clinic", "p:ss")
    assert (target.cafile, target.timeout) == ("/ca.pem", 5.0)
    assert "p:ss" not in repr(target)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://relay", "expected smtp://"),
        ("smtp://u:secret@relay?verify=no", "unknown option 'verify'"),
        ("smtp://relay?starttls=maybe", "starttls must be true or false"),
        ("smtps://relay?starttls=true", "already encrypted"),
        ("smtp://relay?timeout=0", "timeout must be greater than 0"),
        ("smtp://relay?cafile=/ca.pem", "cafile is for TLS"),
    ],
)
def test_a_bad_smtp_url_is_rejected_without_quoting_the_password(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_smtp_url(url)
    assert "secret" not in str(caught.value)


def test_a_cafile_that_cannot_be_read_stops_the_channel_at_start(tmp_path: Path) -> None:
    url = f"smtps://relay?cafile={tmp_path / 'missing.pem'}"

    with pytest.raises(SettingsError, match="AFTERCARE_SMTP_URL: cannot load cafile"):
        EmailChannel(Settings(smtp_url=url, email_from=SENDER))


def test_a_header_that_cannot_be_written_is_permanent(
    channel: EmailChannel, smtp_server: FakeSmtpServer
) -> None:
    error = refusal(lambda: channel.send(outgoing(to=f"{PATIENT}\r\nBcc: someone@example.org")))

    assert (error.permanent, error.code) == (True, "compose")
    assert PATIENT not in str(error)
    assert smtp_server.messages == []


def test_the_html_keeps_paragraphs_lists_links_and_short_lines() -> None:
    page = html_page(BODY + "\n\nMore at https://clinic.example.org/care?a=1&b=2.", "T", "en", None)

    assert "<p>Hello Ana,</p>" in page
    assert (
        "<ul>\n<li>Keep the bandage on for two days.</li>\n<li>You may feel sore where the needle"
        " went in. Applying ice to the area can help. This soreness should be gone within two to"
        " three days.</li>\n</ul>"
    ) in page
    assert "<p>Spine Care Clinic<br>\n+1 555 010 0199</p>" in page
    link = "https://clinic.example.org/care?a=1&amp;b=2"
    assert f'More at <a href="{link}">{link}</a>.</p>' in page


def test_the_fake_server_runs_in_its_own_process(
    tmp_path: Path, make_channel: Callable[[str], EmailChannel]
) -> None:
    command = [sys.executable, "-m", "tests.fakes.smtp", "--spool", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            make_channel(url).send(outgoing())
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0

    assert (
        b"Message-ID: <aftercare.42@clinic.example.org>" in (tmp_path / "000001.eml").read_bytes()
    )
    assert PATIENT in (tmp_path / "000001.json").read_text()
