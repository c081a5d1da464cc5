"""The signalling socket of a live session, over the real ASGI stack (origin check, cookie and
token auth) and the Redis channel layer: who is admitted, relaying, chat, snapshots on
reconnect, removal and sign-out, size limits and the flood throttle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client
from knox.models import AuthToken

from config.asgi import application
from consult import live
from consult.models import ConsultMessage, LiveParticipant, LiveSession
from registry import sms
from registry.access import principal_for

from .conftest import act, submitted

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test runs its sockets in a new event loop (``async_to_sync``); the Redis layer's
    receive lock belongs to the loop that made it, so each test gets a layer of its own."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def _cookie(user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


_opened: list[WebsocketCommunicator] = []


def _socket(session_id: str, cookie: str | None = None, *, origin=b"http://localhost", query=""):
    headers = [(b"origin", origin)] if origin else []
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    socket = WebsocketCommunicator(
        application, f"/ws/consult/{session_id}/{query}", headers=headers
    )
    _opened.append(socket)
    return socket


async def _close_all() -> None:
    """End every consumer of the scenario, also those the server closed: a consumer keeps
    waiting on the channel layer (bound to this event loop) until its client disconnects."""
    while _opened:
        socket = _opened.pop()
        with contextlib.suppress(Exception):  # already finished
            await socket.disconnect()


def _session(community, patient) -> str:
    consult = submitted(community, patient)
    assert act(community, "ecg_specialist", consult["id"], "accept").status_code == 200
    session = live.live_session_open(
        principal=principal_for(community.users["village_a"]), consult_id=consult["id"]
    )
    return str(session.external_id)


def _participant(session_id: str, username: str) -> str:
    return str(
        LiveParticipant.objects.get(
            session__external_id=session_id, user__username=username
        ).external_id
    )


async def _run(scenario):
    try:
        return await scenario()
    finally:
        await _close_all()


async def _closed_with(socket: WebsocketCommunicator, timeout: float = 5) -> int | None:
    """Read frames until the server closes; the close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = await socket.receive_output(timeout=max(0.05, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return output.get("code")
    return None


async def _until(socket: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = await socket.receive_json_from(timeout=max(0.05, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame


def test_anonymous_outsiders_and_other_origins_are_refused(community, patient):
    sid = _session(community, patient)
    outsider = _cookie(community.users["township_doctor"])  # sees the consult, not invited
    foreign = _cookie(community.users["other_doctor"])
    member = _cookie(community.users["village_a"])

    async def scenario():
        codes = []
        for socket in (_socket(sid), _socket(sid, outsider), _socket(sid, foreign)):
            connected, _ = await socket.connect()
            assert connected
            codes.append(await _closed_with(socket))
        cross = _socket(sid, member, origin=b"http://evil.example")
        codes.append(await cross.connect())
        bad_token = _socket(sid, query="?token=nonsense")
        await bad_token.connect()
        codes.append(await _closed_with(bad_token))
        return codes

    codes = async_to_sync(_run)(scenario)
    assert codes[:3] == [4401, 4403, 4403]
    assert codes[3][0] is False  # the origin validator refuses the handshake
    assert codes[4] == 4401


def test_peers_exchange_offer_answer_and_ice_and_chat_is_kept(community, patient):
    sid = _session(community, patient)
    a_id, b_id = _participant(sid, "village_a"), _participant(sid, "ecg_specialist")
    _, token = AuthToken.objects.create(community.users["ecg_specialist"])
    a_cookie = _cookie(community.users["village_a"])

    async def scenario():
        a = _socket(sid, a_cookie)
        b = _socket(sid, query=f"?token={token}")  # the knox token, validated by the consumer
        assert (await a.connect())[0]
        welcome_a = await _until(a, "welcome")
        assert (await b.connect())[0]
        welcome_b = await _until(b, "welcome")
        joined = await _until(a, "presence")
        await a.send_json_to({"type": "offer", "seq": 1, "to": b_id, "payload": {"sdp": "v=0"}})
        offer = await _until(b, "offer")
        await b.send_json_to({"type": "answer", "seq": 1, "to": a_id, "payload": {"sdp": "v=0"}})
        answer = await _until(a, "answer")
        await a.send_json_to(
            {"type": "ice", "seq": 2, "to": b_id, "payload": {"candidate": {"candidate": "x"}}}
        )
        ice = await _until(b, "ice")
        await a.send_json_to({"type": "ice", "seq": 2, "to": b_id, "payload": {}})
        stale = await _until(a, "error")
        await a.send_json_to({"type": "offer", "seq": 3, "to": "nobody", "payload": {"sdp": "x"}})
        stranger = await _until(a, "error")
        await b.send_json_to({"type": "chat", "seq": 2, "payload": {"text": "看到ST段抬高"}})
        chat_a = await _until(a, "chat")
        await a.send_to(
            text_data=json.dumps({"type": "chat", "seq": 9, "payload": {"text": "x" * 70000}})
        )
        oversized = await _closed_with(a)
        await b.disconnect()
        return welcome_a, welcome_b, joined, offer, answer, ice, stale, stranger, chat_a, oversized

    welcome_a, welcome_b, joined, offer, answer, ice, stale, stranger, chat, big = async_to_sync(
        _run
    )(scenario)
    assert welcome_a["me"] == a_id and welcome_b["me"] == b_id
    assert {p["id"]: p["presence"] for p in welcome_b["participants"]}[a_id] == "online"
    assert welcome_b["ice_servers"] == []
    assert joined["from"] == b_id and joined["state"] == "online"
    assert offer["from"] == a_id and offer["seq"] == 1 and offer["payload"]["sdp"] == "v=0"
    assert answer["from"] == b_id and ice["payload"]["candidate"]["candidate"] == "x"
    assert stale["code"] == "stale_seq" and stranger["code"] == "not_member"
    assert chat["from"] == b_id and chat["payload"]["text"] == "看到ST段抬高"
    assert big == 1009
    row = ConsultMessage.objects.get()
    assert row.body == "看到ST段抬高" and str(row.session.external_id) == sid


def test_a_reconnect_resumes_the_same_participant_with_a_snapshot(community, patient):
    sid = _session(community, patient)
    a_id = _participant(sid, "village_a")
    cookie = _cookie(community.users["village_a"])
    b_cookie = _cookie(community.users["ecg_specialist"])

    async def scenario():
        b = _socket(sid, b_cookie)
        await b.connect()
        await _until(b, "welcome")
        a = _socket(sid, cookie)
        await a.connect()
        first = await _until(a, "welcome")
        for n in (1, 2, 3):
            await a.send_json_to({"type": "hangup", "seq": n, "payload": {}})
        await _until(b, "hangup")
        await a.disconnect()
        away = await _until(b, "presence")
        again = _socket(sid, cookie)
        await again.connect()
        second = await _until(again, "welcome")
        back = await _until(b, "presence")
        await again.disconnect()
        await b.disconnect()
        return first, away, second, back

    first, away, second, back = async_to_sync(_run)(scenario)
    assert first["resumed"] is False
    assert away["state"] == "away" and away["from"] == a_id
    assert second["me"] == a_id and second["resumed"] is True and second["last_seq"] == 3
    assert back["state"] == "online" and back["resumed"] is True


def test_a_removed_participant_is_disconnected_at_once(community, patient):
    sid = _session(community, patient)
    b_id = _participant(sid, "ecg_specialist")
    cookie = _cookie(community.users["ecg_specialist"])

    def remove():
        live.live_participant_remove(
            principal=principal_for(community.users["village_a"]),
            session_id=sid,
            participant_id=b_id,
        )

    async def scenario():
        b = _socket(sid, cookie)
        await b.connect()
        await _until(b, "welcome")
        started = time.monotonic()
        await database_sync_to_async(remove)()
        code = await _closed_with(b)
        again = _socket(sid, cookie)
        await again.connect()
        return code, time.monotonic() - started, await _closed_with(again)

    code, seconds, rejoin = async_to_sync(_run)(scenario)
    assert code == 4403 and seconds < 2
    assert rejoin == 4403


def test_signing_out_or_a_disabled_account_closes_the_socket_on_the_recheck(
    community, patient, settings
):
    settings.HUIZHEN_LIVE_RECHECK_SECONDS = 0.3
    sid = _session(community, patient)
    a_cookie = _cookie(community.users["village_a"])
    b_cookie = _cookie(community.users["ecg_specialist"])

    def sign_out_a():
        from django.contrib.sessions.models import Session

        Session.objects.filter(session_key=a_cookie).delete()

    def disable_b():
        user = community.users["ecg_specialist"]
        user.is_active = False
        user.save(update_fields=["is_active"])

    async def scenario():
        a, b = _socket(sid, a_cookie), _socket(sid, b_cookie)
        await a.connect()
        await b.connect()
        await _until(a, "welcome")
        await _until(b, "welcome")
        await database_sync_to_async(sign_out_a)()
        await database_sync_to_async(disable_b)()
        return await _closed_with(a, 5), await _closed_with(b, 5)

    assert async_to_sync(_run)(scenario) == (4403, 4403)


def test_a_flooding_client_is_throttled_while_another_room_stays_prompt(
    community, patient, settings
):
    settings.HUIZHEN_LIVE_RATE = 20
    settings.HUIZHEN_LIVE_BURST = 40
    flood_room = _session(community, patient)
    quiet_room = _session(community, patient)
    flooder = _cookie(community.users["village_a"])
    a_cookie = _cookie(community.users["village_a"])
    b_cookie = _cookie(community.users["ecg_specialist"])
    b_id = _participant(quiet_room, "ecg_specialist")

    async def scenario():
        f = _socket(flood_room, flooder)
        a, b = _socket(quiet_room, a_cookie), _socket(quiet_room, b_cookie)
        for s in (f, a, b):
            await s.connect()
            await _until(s, "welcome")
        await _until(a, "presence")

        async def flood():
            for n in range(1, 400):
                await f.send_json_to({"type": "hangup", "seq": n, "payload": {}})
            return await _closed_with(f)

        async def measure():
            latencies = []
            for n in range(1, 21):
                started = time.monotonic()
                await a.send_json_to(
                    {"type": "ice", "seq": n, "to": b_id, "payload": {"candidate": {"n": n}}}
                )
                frame = await _until(b, "ice")
                assert frame["payload"]["candidate"]["n"] == n
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.02)
            return latencies

        code, latencies = await asyncio.gather(flood(), measure())
        await a.disconnect()
        await b.disconnect()
        return code, latencies

    code, latencies = async_to_sync(_run)(scenario)
    assert code == 4429
    assert max(latencies) < 0.5, latencies


def test_the_patient_enters_with_the_participant_token(community, patient):
    patient.mobile = "13800000004"
    patient.save()
    sid = _session(community, patient)
    link = live.live_patient_invite(
        principal=principal_for(community.users["village_a"]), session_id=sid
    )
    live.live_patient_link_send_code(token=link.token)
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)
    value = live.live_patient_link_confirm(token=link.token, code=code)

    async def scenario():
        p = _socket(sid, query=f"?p={value}")
        await p.connect()
        welcome = await _until(p, "welcome")
        forged = _socket(sid, query=f"?p={value[:-2]}xx")
        await forged.connect()
        return welcome, await _closed_with(forged)

    welcome, forged = async_to_sync(_run)(scenario)
    assert welcome["me"] == str(link.participant.external_id)
    assert forged == 4403


def test_a_failed_call_goes_on_as_store_and_forward_with_nothing_lost(community, patient):
    sid = _session(community, patient)
    a_cookie = _cookie(community.users["village_a"])
    b_cookie = _cookie(community.users["ecg_specialist"])

    async def scenario():
        a, b = _socket(sid, a_cookie), _socket(sid, b_cookie)
        for s in (a, b):
            await s.connect()
            await _until(s, "welcome")
        await a.send_json_to({"type": "chat", "seq": 1, "payload": {"text": "血压150/95"}})
        await _until(b, "chat")
        await a.send_json_to({"type": "call_failed", "seq": 2, "payload": {"reason": "ice"}})
        told_a, told_b = await _until(a, "store_and_forward"), await _until(b, "store_and_forward")
        await a.disconnect()
        await b.disconnect()
        return told_a, told_b

    async_to_sync(_run)(scenario)
    session = LiveSession.objects.get(external_id=sid)
    assert session.fallback_at is not None and session.fallback_reason == "ice"
    kinds = list(
        ConsultMessage.objects.filter(consult=session.consult)
        .order_by("created_at")
        .values_list("kind", "body")
    )
    assert kinds[0] == ("chat", "血压150/95") and kinds[1][0] == "system"
    # the consult goes on by messages after the call
    response = community.client("ecg_specialist").post(
        f"/api/v1/consult/consults/{session.consult.external_id}/messages/",
        {"body": "请补传心电图"},
    )
    assert response.status_code == 201
