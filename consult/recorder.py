"""The recorder peer: an aiortc peer per participant that answers the browser's send-only
offer and writes what it receives with aiortc's ``MediaRecorder`` (Matroska: MP4 sometimes
fails at ``stop()``). One ``SessionRecorder`` per running recording lives on this web
process's event loop; it re-checks consent and the stop flag every
``HUIZHEN_RECORDING_RECHECK_SECONDS`` (``recording.recording_check``), and on stop closes the
peers, joins the participants' parts into one ``.mkv`` (one audio and one video stream per
part, on a common timeline) and hands it to ``recording.recording_store``.

The rules (consent, who may send media, storage, audit) are in ``recording``; this module
holds no business rule beyond the media plumbing. See ``recording`` for the design.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder
from asgiref.sync import sync_to_async

from . import recording
from .live import MAX_PARTICIPANTS
from .precall import BadOffer, _ice

logger = logging.getLogger(__name__)

NODE = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_recorders: dict[str, SessionRecorder] = {}


class RecorderFull(Exception):
    """Every participant already sends to this recorder (too many parts)."""


@dataclass
class Part:
    participant_id: str
    pc: RTCPeerConnection
    recorder: MediaRecorder
    path: str
    offset: float  # seconds after the recording's first part started
    tracks: int = 0
    closed: bool = False


@dataclass
class SessionRecorder:
    recording_id: str
    directory: str
    started: float = field(default_factory=time.monotonic)
    parts: list[Part] = field(default_factory=list)
    finishing: asyncio.Task[None] | None = None
    watchdog: asyncio.Task[None] | None = None

    async def add_peer(self, *, participant_id: str, sdp: str, label: str) -> RTCSessionDescription:
        if self.finishing is not None:
            raise BadOffer("recording is stopping")
        if len(self.parts) >= MAX_PARTICIPANTS * 4:
            raise RecorderFull
        for old in self.parts:  # a participant who reconnects starts a new part
            if old.participant_id == participant_id and not old.closed:
                await _close_part(old)
        path = os.path.join(self.directory, f"part-{len(self.parts):03d}.mkv")
        pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=_ice(label)))
        part = Part(
            participant_id=participant_id,
            pc=pc,
            recorder=MediaRecorder(path, format="matroska"),
            path=path,
            offset=time.monotonic() - self.started,
        )
        self.parts.append(part)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind in ("audio", "video"):
                part.recorder.addTrack(track)
                part.tracks += 1

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed":
                await _close_part(part)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, KeyError, IndexError, AssertionError, TypeError) as exc:
            # aiortc's SDP parser asserts on some malformed offers.
            await _close_part(part)
            raise BadOffer(str(exc)) from exc
        await part.recorder.start()
        return pc.localDescription

    async def run_watchdog(self) -> None:
        interval = recording.recheck_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                reason = await sync_to_async(recording.recording_check)(
                    recording_id=self.recording_id
                )
            except Exception:  # noqa: BLE001 - a database hiccup is not a stop; retry
                logger.warning("recording re-check failed", exc_info=True)
                continue
            if reason is not None:
                self.finish()
                return

    def finish(self) -> asyncio.Task[None]:
        if self.finishing is None:
            self.finishing = asyncio.ensure_future(self._finish())
        return self.finishing

    async def _finish(self) -> None:
        try:
            for part in self.parts:
                await _close_part(part)
            path, duration = await asyncio.to_thread(_join_parts, self.parts, self.directory)
            await sync_to_async(recording.recording_store)(
                recording_id=self.recording_id, path=path, duration=duration
            )
        except Exception:  # noqa: BLE001 - logged; the row stays "stopping" for an operator
            logger.exception("storing recording %s failed", self.recording_id)
        finally:
            _recorders.pop(self.recording_id, None)
            if self.watchdog is not None and self.watchdog is not asyncio.current_task():
                self.watchdog.cancel()
            shutil.rmtree(self.directory, ignore_errors=True)


async def _close_part(part: Part) -> None:
    if part.closed:
        return
    part.closed = True
    try:
        await part.recorder.stop()
    except Exception:  # noqa: BLE001 - a part that never got media cannot be finalised
        logger.debug("recorder part stop failed", exc_info=True)
    try:
        await part.pc.close()
    except Exception:  # noqa: BLE001 - closing a half-negotiated peer may raise
        logger.debug("recorder peer close failed", exc_info=True)


def _usable(path: str) -> bool:
    try:
        with av.open(path) as container:
            return any(s.type in ("audio", "video") for s in container.streams)
    except (av.FFmpegError, OSError):
        return False


def _duration(path: str) -> float | None:
    try:
        with av.open(path) as container:
            if container.duration is not None:
                return float(container.duration / av.time_base)
    except (av.FFmpegError, OSError):
        return None
    return None


def _join_parts(parts: list[Part], directory: str) -> tuple[str | None, float | None]:
    """One file from the parts: a single part as it is; several remuxed (no re-encoding) into
    one Matroska file, each part's streams shifted to where it began."""
    usable = [p for p in parts if os.path.exists(p.path) and _usable(p.path)]
    if not usable:
        return None, None
    if len(usable) == 1:
        return usable[0].path, _duration(usable[0].path)
    out_path = os.path.join(directory, "recording.mkv")
    with av.open(out_path, mode="w", format="matroska") as out:
        inputs = []
        for part in usable:
            source = av.open(part.path)
            mapping = {}
            for stream in source.streams:
                if stream.type in ("audio", "video"):
                    mapping[stream.index] = out.add_stream_from_template(stream)
            inputs.append((part, source, mapping))
        for part, source, mapping in inputs:
            with source:
                first: dict[int, int] = {}
                for packet in source.demux(*[source.streams[i] for i in mapping]):
                    if packet.dts is None or packet.stream.index not in mapping:
                        continue
                    index = packet.stream.index
                    base = first.setdefault(index, packet.dts)
                    tb: Fraction = packet.time_base
                    shift = int(part.offset / tb) - base
                    packet.dts += shift
                    if packet.pts is not None:
                        packet.pts += shift
                    packet.stream = mapping[index]
                    out.mux(packet)
    return out_path, _duration(out_path)


def recorder_for(recording_id: str) -> SessionRecorder:
    """The running recorder of ``recording_id`` on this process (created on first use)."""
    found = _recorders.get(recording_id)
    if found is None:
        found = SessionRecorder(
            recording_id=recording_id, directory=tempfile.mkdtemp(prefix="huizhen-rec-")
        )
        _recorders[recording_id] = found
        found.watchdog = asyncio.ensure_future(found.run_watchdog())
    return found


async def recorder_answer(
    *, session_id: str, sdp: str, label: str, user: object = None, participant_token: str = ""
) -> RTCSessionDescription:
    """Admit the caller (``recording.recording_offer_admit``) and answer their offer with a
    recorder peer; raises the admission's domain errors, ``BadOffer`` or ``RecorderFull``."""
    if "m=" not in sdp:
        raise BadOffer("not an offer")
    admission = await sync_to_async(recording.recording_offer_admit)(
        session_id=session_id, user=user, participant_token_value=participant_token, node=NODE
    )
    session_recorder = recorder_for(admission.recording_id)
    return await session_recorder.add_peer(
        participant_id=admission.participant_id, sdp=sdp, label=label
    )


def running_recorders() -> int:
    return len(_recorders)


async def recorders_finish_all() -> None:
    """Stop every recorder of this process and wait for the files to be stored (tests and
    shutdown)."""
    for session_recorder in list(_recorders.values()):
        await session_recorder.finish()
