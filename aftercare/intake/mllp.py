"""A threaded MLLP listener: HL7 v2 messages framed as ``<VT> message <FS><CR>`` over TCP.

Each connection has its own thread, so a slow sender holds up only itself. Nothing a peer sends
stops the listener: bytes outside a frame, a frame that restarts before it ends and a frame over
the size limit are framing errors (logged, counted, skipped, and the connection goes on); a peer
that half-closes its socket still gets the ACKs of the messages it finished; a silent one is
closed after the idle timeout.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\r"
MAX_MESSAGE = 1 << 20  # an ADT message is a few KiB; a megabyte is a runaway frame
IDLE_TIMEOUT = 120.0
MAX_CONNECTIONS = 64


@dataclass(frozen=True)
class FramingError:
    reason: str


class Framer:
    """Splits a byte stream into MLLP frames; errors are returned in line, never raised."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._in_frame = False
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        self._buffer += data
        found: list[bytes | FramingError] = []
        while True:
            if not self._in_frame:
                start = self._buffer.find(START)
                junk = self._buffer if start < 0 else self._buffer[:start]
                if junk.strip(b"\r\n\x00 "):
                    found.append(FramingError("bytes outside a frame"))
                if start < 0:
                    self._buffer.clear()
                    return found
                del self._buffer[: start + 1]
                self._in_frame = True
            end = self._buffer.find(END)
            restart = self._buffer.find(START)
            if restart >= 0 and (end < 0 or restart < end):
                found.append(FramingError("a frame started before the previous one ended"))
                del self._buffer[:restart]
                self._in_frame = False
                continue
            if end < 0:
                if len(self._buffer) > self._max:
                    found.append(FramingError(f"a frame longer than {self._max} bytes"))
                    self._buffer.clear()
                    self._in_frame = False
                return found
            found.append(bytes(self._buffer[:end]))
            del self._buffer[: end + len(END)]
            self._in_frame = False


def frame(message: bytes) -> bytes:
    return START + message + END


@dataclass
class Counters:
    connections: int = 0
    messages: int = 0
    framing_errors: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)


Handler = Callable[[bytes], bytes]


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        server = self.server
        if not server.slots.acquire(blocking=False):
            server.counters.add("refused")
            log.warning("mllp connection refused: %d connections open", MAX_CONNECTIONS)
            return
        try:
            server.counters.add("connections")
            self._serve(sock, server)
        finally:
            server.slots.release()

    def _serve(self, sock: socket.socket, server: _Server) -> None:
        sock.settimeout(server.idle_timeout)
        framer = Framer(server.max_message)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                log.info("mllp connection idle for %.0f s: closed", server.idle_timeout)
                return
            except OSError as exc:
                log.info("mllp connection lost: %s", type(exc).__name__)
                return
            if not data:  # closed, or half-closed: every finished message has its ACK already
                return
            for item in framer.feed(data):
                if isinstance(item, FramingError):
                    server.counters.add("framing_errors")
                    log.warning("mllp framing error: %s", item.reason)
                    continue
                server.counters.add("messages")
                try:
                    reply = server.handler(item)
                except Exception as exc:  # a bug: no ACK, so the sender resends; others go on
                    # The type only: an exception's text may quote the message.
                    log.error("mllp handler failed: %s", type(exc).__name__)
                    return
                try:
                    sock.sendall(frame(reply))
                except OSError as exc:
                    log.info("mllp connection lost before the ACK: %s", type(exc).__name__)
                    return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        idle_timeout: float,
        max_message: int,
    ) -> None:
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.max_message = max_message
        self.counters = Counters()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Connection)

    def handle_error(self, request: object, client_address: object) -> None:
        # The default prints a traceback to stderr; what failed is logged where it failed.
        log.error("mllp connection failed")


class Listener:
    """``serve_forever`` in the caller's thread (the CLI) or ``start`` one (tests, benchmarks)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        idle_timeout: float = IDLE_TIMEOUT,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self._server = _Server((host, port), handler, idle_timeout, max_message)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def counters(self) -> Counters:
        return self._server.counters

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self.serve_forever, name="mllp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
