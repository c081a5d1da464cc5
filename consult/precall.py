"""The pre-call test: an aiortc peer on the server answers a browser's offer, sends back the
audio and video it receives (through a ``MediaRelay``) and echoes every data-channel message,
so that the browser can measure round-trip time, loss and the selected candidate pair.

Peers live on the web server's event loop and are closed after ``HUIZHEN_PRECALL_SECONDS``
(default 60); at most ``HUIZHEN_PRECALL_MAX_PEERS`` (default 8) run at once. aiortc's ICE
servers come from settings (``turn.ice_servers_for``); with none configured it gathers host
candidates only (aiortc would otherwise use a public STUN server).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from django.conf import settings

from .turn import ice_servers_for

logger = logging.getLogger(__name__)

_peers: set[RTCPeerConnection] = set()

# Link classes, shared with static/consult/room.js.
VIDEO_OK = "video_ok"
AUDIO_ONLY = "audio_only"
STORE_AND_FORWARD = "store_and_forward"


class PrecallBusy(Exception):
    """Too many pre-call tests are running; try again shortly."""


class BadOffer(Exception):
    """The offer could not be parsed or negotiated."""


@dataclass(frozen=True)
class LinkQuality:
    rtt_ms: float | None
    loss: float | None  # 0..1
    relayed: bool


def classify(quality: LinkQuality) -> str:
    """video ok below 300 ms RTT and 3 % loss; audio only below 800 ms and 10 %; else the
    consult should go on by store and forward. No measurement at all means no connection."""
    if quality.rtt_ms is None:
        return STORE_AND_FORWARD
    loss = quality.loss or 0.0
    if quality.rtt_ms < 300 and loss < 0.03:
        return VIDEO_OK
    if quality.rtt_ms < 800 and loss < 0.10:
        return AUDIO_ONLY
    return STORE_AND_FORWARD


def _ice(label: str) -> list[RTCIceServer]:
    servers = []
    for entry in ice_servers_for(label):
        servers.append(
            RTCIceServer(
                urls=entry["urls"],
                username=entry.get("username"),
                credential=entry.get("credential"),
            )
        )
    return servers


def peers_running() -> int:
    return len(_peers)


async def _close(pc: RTCPeerConnection) -> None:
    _peers.discard(pc)
    try:
        await pc.close()
    except Exception:  # noqa: BLE001 - closing a half-negotiated peer may raise
        logger.debug("pre-call peer close failed", exc_info=True)


async def precall_answer(*, sdp: str, kind: str = "offer", label: str) -> RTCSessionDescription:
    """Answer ``sdp`` with an echo peer; the answer carries all candidates (no trickle)."""
    limit = int(getattr(settings, "HUIZHEN_PRECALL_MAX_PEERS", 8))
    if len(_peers) >= limit:
        raise PrecallBusy
    if kind != "offer" or "m=" not in sdp:
        raise BadOffer("not an offer")
    pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=_ice(label)))
    _peers.add(pc)
    relay = MediaRelay()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        pc.addTrack(relay.subscribe(track))

    @pc.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: Any) -> None:
            if channel.readyState == "open":
                channel.send(message)

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            await _close(pc)

    lifetime = float(getattr(settings, "HUIZHEN_PRECALL_SECONDS", 60))
    asyncio.get_running_loop().call_later(lifetime, lambda: asyncio.ensure_future(_close(pc)))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, KeyError, IndexError, AssertionError) as exc:  # aiortc asserts on some SDP
        await _close(pc)
        raise BadOffer(str(exc)) from exc
    return pc.localDescription


async def precall_close_all() -> None:
    for pc in list(_peers):
        await _close(pc)
