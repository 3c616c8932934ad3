"""A plain MLLP client over a real TCP socket, for tests and the benchmark."""

from __future__ import annotations

import socket
from types import TracebackType

from aftercare.intake.mllp import END, START


class MllpClient:
    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: str) -> str:
        """Send one framed message and return its ACK, segments joined by carriage returns."""
        self.sock.sendall(START + message.encode() + END)
        return self.read_ack()

    def read_ack(self) -> str:
        while END not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the listener closed the connection before an ACK")
            self._buffer += chunk
        frame, _, self._buffer = self._buffer.partition(END)
        assert frame.startswith(START), frame[:20]
        return frame[1:].decode()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def msa(ack: str) -> list[str]:
    """The MSA segment's fields: [code, control id, text]."""
    segment = next(s for s in ack.split("\r") if s.startswith("MSA|"))
    return [*segment.split("|")[1:], "", "", ""][:3]


def err(ack: str) -> list[str]:
    segment = next((s for s in ack.split("\r") if s.startswith("ERR|")), "ERR|")
    return segment.split("|")[1:]
