"""The pre-call echo test: an aiortc client in the test offers audio, video and a data
channel to ``/api/v1/consult/precall/offer/``; the server's aiortc peer answers, echoes the
frames back and the data-channel pings."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from knox.models import AuthToken

from consult import precall

URL = "/api/v1/consult/precall/offer/"
pytestmark = pytest.mark.django_db(transaction=True)


def _client_peer() -> RTCPeerConnection:
    """A browser stand-in: synthetic audio and video. aioice leaves loopback out of its host
    candidates; both peers meet on the machine's other addresses (eth0 here)."""
    pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))  # no public STUN
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    return pc


def test_the_echo_peer_answers_an_aiortc_offer_and_returns_frames(community):
    _, token = AuthToken.objects.create(community.users["village_a"])

    async def scenario():
        pc = _client_peer()
        channel = pc.createDataChannel("rtt")
        echoes: asyncio.Queue[str] = asyncio.Queue()
        channel.on("message", lambda m: echoes.put_nowait(m))
        opened = asyncio.Event()
        channel.on("open", opened.set)
        received: dict[str, object] = {}

        @pc.on("track")
        def on_track(track):
            received[track.kind] = track

        await pc.setLocalDescription(await pc.createOffer())
        response = await AsyncClient().post(
            URL,
            {"sdp": pc.localDescription.sdp, "type": "offer"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.content
        body = response.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        await asyncio.wait_for(opened.wait(), 15)
        rtts = []
        for _ in range(5):
            sent = time.monotonic()
            channel.send(f"ping {sent}")
            assert (await asyncio.wait_for(echoes.get(), 5)) == f"ping {sent}"
            rtts.append((time.monotonic() - sent) * 1000)
        frames = 0
        while "video" not in received:
            await asyncio.sleep(0.05)
        video = received["video"]
        while frames < 3:
            frame = await asyncio.wait_for(video.recv(), 10)
            frames += 1
        audio = await asyncio.wait_for(received["audio"].recv(), 10)
        state = pc.iceConnectionState
        await pc.close()
        running = precall.peers_running()
        await precall.precall_close_all()
        return body, rtts, frames, frame.width, audio.sample_rate, state, running

    body, rtts, frames, width, rate, state, running = async_to_sync(scenario)()
    assert body["type"] == "answer" and body["ice_servers"] == []
    assert "a=candidate" in body["sdp"]
    assert state == "completed" or state == "connected"
    assert frames == 3 and width > 0 and rate > 0
    assert max(rtts) < 1000
    assert running == 1


def test_the_precall_endpoint_refuses_anonymous_and_bad_offers(community):
    async def scenario():
        anonymous = await AsyncClient().post(
            URL, {"sdp": "v=0", "type": "offer"}, content_type="application/json"
        )
        client = AsyncClient()
        await client.aforce_login(community.users["village_a"])
        garbage = await client.post(URL, {"sdp": "hello"}, content_type="application/json")
        wrong = await client.post(URL, "not json", content_type="application/json")
        truncated = await client.post(
            URL, {"sdp": "v=0\r\nm=audio", "type": "offer"}, content_type="application/json"
        )
        return anonymous.status_code, garbage.status_code, wrong.status_code, truncated.status_code

    assert async_to_sync(scenario)() == (401, 400, 400, 400)
