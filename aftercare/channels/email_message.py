"""An email as patients receive it: plain text and HTML alternatives built from the rendered text,
a stable Message-ID, RFC 8058 unsubscribe headers, and attachments (the .ics calendar)."""

from __future__ import annotations

import email.policy
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from aftercare.channels.base import Outgoing


class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """Never folded: Python would turn a long URL into an RFC 2047 encoded word, which no mail
    client reads as a URL (and folding List-Unsubscribe breaks some DKIM signers)."""

    def fold(self, *, policy: Any) -> str:
        if not str(self).isascii():
            return super().fold(policy=policy)
        return f"{self.name}: {self}{policy.linesep}"


_headers = HeaderRegistry()
_headers.map_to_type("list-unsubscribe", _OneLineHeader)
_POLICY = email.policy.SMTP.clone(header_factory=_headers)


def message_id(outbox_id: int, sender: str) -> str:
    """The same for every attempt at one outbox row, so clients deduplicate re-sends."""
    return f"<aftercare.{outbox_id}@{sender.rpartition('@')[2]}>"


def compose(message: Outgoing, sender: Address, sent_at: datetime | None = None) -> EmailMessage:
    """The whole email: text and HTML alternatives, then any attachments (multipart/mixed)."""
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = message.subject or ""
    mail["Date"] = format_datetime(sent_at or datetime.now(UTC))
    mail["Message-ID"] = message_id(message.message_id, sender.addr_spec)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    if message.unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"  # RFC 8058 one-click
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    footer = _footer(message.language, message.unsubscribe_url)
    # Quoted-printable keeps accented text 7-bit clean for any relay.
    mail.set_content(plain_text(message.text, footer), cte="quoted-printable")
    page = html_page(message.text, message.subject or "", message.language, footer)
    mail.add_alternative(page, subtype="html", cte="quoted-printable")
    for attachment in message.attachments:
        content_type = EmailMessage()
        content_type["Content-Type"] = attachment.content_type
        mail.add_attachment(
            attachment.data,
            maintype=content_type.get_content_maintype(),
            subtype=content_type.get_content_subtype(),
            filename=attachment.filename,
            params=dict(content_type["Content-Type"].params),
        )
    # Last: building the body moves or drops the Content-* headers set before it.
    mail["Content-Language"] = message.language
    return mail


_FOOTERS = {
    "en": ("To stop these email reminders, open this link:", "Stop these email reminders"),
    "es": (
        "Para dejar de recibir estos recordatorios por correo, abra este enlace:",
        "Dejar de recibir estos recordatorios por correo",
    ),
}


@dataclass(frozen=True)
class _Footer:
    text: str
    link_text: str
    url: str


def _footer(language: str, url: str | None) -> _Footer | None:
    if not url:
        return None
    text, link = _FOOTERS.get(language.split("-")[0].lower(), _FOOTERS["en"])
    return _Footer(text, link, url)


def plain_text(text: str, footer: _Footer | None) -> str:
    body = text.strip() + "\n"
    if footer is None:
        return body
    return f"{body}\n-- \n{footer.text}\n{footer.url}\n"


# A line this long followed by another was wrapped by the template's author: the HTML joins them
# with a space and lets the reader's screen wrap. Shorter lines (signatures) keep their break.
_WRAPPED = 60
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_URL = re.compile(r"https?://[^\s<>\"']+")


def html_page(text: str, title: str, language: str, footer: _Footer | None) -> str:
    """The plain text as HTML: paragraphs, "- " lines as a list, clickable links, all escaped."""
    blocks = [_block(part) for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    if footer is not None:
        link = f'<a href="{html.escape(footer.url)}">{html.escape(footer.link_text)}</a>'
        blocks.append(f'<hr>\n<p style="font-size:13px;color:#555">{link}</p>')
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        '<body style="font-family:Arial,sans-serif;font-size:16px;line-height:1.5;color:#222">\n'
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def _block(paragraph: str) -> str:
    """One paragraph: runs of bullet lines (with their indented continuations) become lists."""
    parts: list[tuple[str, list[str]]] = []  # ("li" | "p", lines)
    for line in paragraph.splitlines():
        bullet = _BULLET.match(line)
        if bullet:
            parts.append(("li", [bullet.group(1)]))
        elif parts and (parts[-1][0] == "p" or line[:1].isspace()):
            parts[-1][1].append(line.strip())
        else:
            parts.append(("p", [line.strip()]))
    out: list[str] = []
    for index, (kind, lines) in enumerate(parts):
        if kind == "p":
            out.append(f"<p>{_inline(lines)}</p>")
            continue
        first = index == 0 or parts[index - 1][0] != "li"
        last = index == len(parts) - 1 or parts[index + 1][0] != "li"
        out.append(
            ("<ul>\n" if first else "") + f"<li>{_inline(lines)}</li>" + ("\n</ul>" if last else "")
        )
    return "\n".join(out)


def _inline(lines: list[str]) -> str:
    html_lines = [_linkify(line) for line in lines]
    joined = html_lines[0]
    for previous, line in zip(lines[:-1], html_lines[1:], strict=True):
        joined += (" " if len(previous) >= _WRAPPED else "<br>\n") + line
    return joined


def _linkify(line: str) -> str:
    out, position = [], 0
    for match in _URL.finditer(line):
        url = match.group().rstrip(".,;:!?)")
        out.append(html.escape(line[position : match.start()]))
        out.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        position = match.start() + len(url)
    out.append(html.escape(line[position:]))
    return "".join(out)
