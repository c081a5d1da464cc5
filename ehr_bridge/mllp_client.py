"""A blocking MLLP client for the outbound sender. Pure: no database, no settings.

One connection is reused for consecutive messages to the same endpoint. Every step is
bounded: connecting by ``connect_timeout``, waiting for the acknowledgement by
``ack_timeout`` (from the moment the message is written). After any failure the connection
is closed, because what arrives next on it can no longer be matched to a message.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from . import mllp

MAX_ACK_BYTES = 1024 * 1024


class SendFailed(Exception):
    """The message may or may not have arrived: no usable acknowledgement came back."""


@dataclass(frozen=True)
class AckResult:
    code: str  # MSA-1: AA, AE, AR (CA, CE, CR in enhanced mode)
    control_id: str  # MSA-2
    text: str  # MSA-3 and the ERR segment, for the log
    raw: bytes


def parse_ack(raw: bytes) -> AckResult:
    """MSA-1, MSA-2 and the error text of an acknowledgement. Raises SendFailed when it
    has no MSA."""
    text = raw.decode("latin-1")
    segments = mllp.normalise_separators(text).split("\r")
    msh = segments[0]
    sep = msh[3] if msh.startswith("MSH") and len(msh) > 3 else "|"
    msa = next((s.split(sep) for s in segments if s.startswith("MSA" + sep)), None)
    if msa is None:
        raise SendFailed("The answer has no MSA segment.")
    msa += ["", "", ""]
    err = next((s for s in segments if s.startswith("ERR" + sep)), "")
    detail = " ".join(p for p in (msa[3].strip(), err) if p)
    return AckResult(msa[1].strip().upper(), msa[2].strip(), detail[:2000], raw)


class MllpConnection:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 10.0,
        ack_timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.connect_timeout, self.ack_timeout = connect_timeout, ack_timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def __enter__(self) -> MllpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer.clear()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            except OSError as exc:
                raise SendFailed(f"Cannot connect to {self.host}:{self.port}: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def send(self, payload: bytes) -> AckResult:
        """Send one message and wait for its acknowledgement. Raises SendFailed."""
        sock = self._connect()
        deadline = time.monotonic() + self.ack_timeout
        try:
            sock.settimeout(self.ack_timeout)
            sock.sendall(mllp.frame(payload))
            while True:
                start = self._buffer.find(mllp.VT)
                end = self._buffer.find(mllp.FS, start + 1) if start >= 0 else -1
                if end >= 0:
                    raw = bytes(self._buffer[start + 1 : end])
                    del self._buffer[: end + 1]
                    if self._buffer[:1] == mllp.CR:
                        del self._buffer[:1]
                    return parse_ack(raw)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    raise SendFailed("The receiver closed the connection without an answer.")
                self._buffer += chunk
                if len(self._buffer) > MAX_ACK_BYTES:
                    raise SendFailed("The answer is larger than an acknowledgement can be.")
        except TimeoutError:
            self.close()
            raise SendFailed(f"No acknowledgement within {self.ack_timeout:g} s.") from None
        except SendFailed:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise SendFailed(f"Connection failed: {exc}") from exc
