"""The room protocol, free of Django and sockets: message schema, per-sender sequence numbers,
the token-bucket throttle, and the room-state snapshot.

Client → server frames are JSON objects::

    {"type": "offer"|"answer"|"ice"|"chat"|"hangup"|"ping"|"call_failed"|"restart",
     "seq": <int, strictly increasing per participant>,
     "to": "<participant id>"       # offer, answer, ice, restart
     "payload": {...}}              # sdp / candidate / {"text": ...}

Server → client frames carry ``from`` and the sender's ``seq``; the first frame after
(re)connecting is ``{"type": "welcome", ...}`` with the snapshot.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

MAX_FRAME_BYTES = 64 * 1024
DIRECTED = frozenset({"offer", "answer", "ice", "restart"})
BROADCAST = frozenset({"chat", "hangup", "call_failed", "media"})
TYPES = DIRECTED | BROADCAST | {"ping"}
RESUME_SECONDS = 60


class ProtocolError(Exception):
    """A frame that breaks the schema; ``code`` goes back to the client in an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FrameTooLarge(ProtocolError):
    pass


@dataclass(frozen=True)
class Frame:
    type: str
    seq: int
    to: str | None
    payload: dict[str, Any]


def parse(text: str | None, *, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    if text is None:
        raise ProtocolError("binary", "binary frames are not accepted")
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise FrameTooLarge("too_large", f"frames are limited to {max_bytes} bytes")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("bad_json", "not JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("bad_frame", "a frame is a JSON object")
    kind = data.get("type")
    if kind not in TYPES:
        raise ProtocolError("bad_type", f"unknown type {kind!r}")
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq > 2**53:
        raise ProtocolError("bad_seq", "seq must be a non-negative integer")
    to = data.get("to")
    if kind in DIRECTED:
        if not isinstance(to, str) or not 1 <= len(to) <= 64:
            raise ProtocolError("bad_to", f"{kind} needs 'to', a participant id")
    else:
        to = None
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise ProtocolError("bad_payload", "payload must be an object")
    if kind in ("offer", "answer"):
        if not isinstance(payload.get("sdp"), str):
            raise ProtocolError("bad_payload", f"{kind} needs payload.sdp")
    if kind == "chat":
        text_ = payload.get("text")
        if not isinstance(text_, str) or not text_.strip() or len(text_) > 4000:
            raise ProtocolError("bad_payload", "chat needs payload.text (1-4000 characters)")
    return Frame(type=kind, seq=seq, to=to, payload=payload)


@dataclass
class SequenceGuard:
    """Per-sender ordering: a frame whose seq is not above the last accepted one is a replay
    (a resent frame after a reconnect) and is dropped."""

    last: int = -1

    def accept(self, seq: int) -> bool:
        if seq <= self.last:
            return False
        self.last = seq
        return True


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; each frame costs one."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class PeerState:
    participant: str
    online: bool
    last_seq: int
    seen: float  # unix time of the last frame or disconnect


def snapshot(
    *,
    me: str,
    roster: list[dict[str, Any]],
    states: dict[str, PeerState],
    resumed: bool,
    ice_servers: list[dict[str, Any]],
    now: float | None = None,
) -> dict[str, Any]:
    """The welcome frame: who is in the room, who is online (or reconnecting within the
    resume window), the last seq seen from each peer, and this participant's ICE servers."""
    now = time.time() if now is None else now
    peers = []
    for row in roster:
        state = states.get(row["id"])
        presence = "offline"
        if state is not None:
            if state.online:
                presence = "online"
            elif now - state.seen < RESUME_SECONDS:
                presence = "reconnecting"
        peers.append({**row, "presence": presence, "last_seq": state.last_seq if state else -1})
    mine = states.get(me)
    return {
        "type": "welcome",
        "me": me,
        "resumed": resumed,
        "last_seq": mine.last_seq if mine else -1,
        "participants": peers,
        "ice_servers": ice_servers,
    }
