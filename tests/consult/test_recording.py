"""Recording of a live consult: consent from everyone (the patient's registry consent, each
staff participant's in-session agreement) or a 409 naming who is missing; an aiortc client in
the test sends synthetic audio and video to the recorder peer for about two seconds; the file
kept in storage is playable, its SHA-256 matches and is in the audit trail; revoking consent
stops the recording; other organisations get 404; expired files are deleted."""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import math
import time
from datetime import timedelta

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import AsyncClient
from django.utils import timezone
from knox.models import AuthToken

from consult import recorder, recording
from consult.models import Recording, RecordingAgreement, RecordingStatus
from registry.access import principal_for
from registry.models import AuditEvent, Consent
from registry.services import consent_revoke

from .conftest import staff
from .test_live_sessions import open_session
from .test_live_signalling import _cookie, _run, _socket, _until

API = "/api/v1/consult/"
pytestmark = pytest.mark.django_db(transaction=True)


class PatternVideo(VideoStreamTrack):
    """Moving colour bars, 320×240 at 30 frames a second."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.n += 1
        x = (np.arange(320) + self.n * 4) % 320
        row = np.stack([x * 255 // 320, 255 - x * 255 // 320, np.full(320, 128)], axis=1)
        image = np.repeat(row[np.newaxis, :, :], 240, axis=0).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneAudio(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames of 48 kHz mono."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        rate, samples = 48000, 960
        if self.start is None:
            self.start = time.time()
        else:
            wait = self.start + (self.sent / rate) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(samples) + self.sent) / rate
        wave = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.pts, frame.sample_rate = self.sent, rate
        frame.time_base = fractions.Fraction(1, rate)
        self.sent += samples
        return frame


def _consent_all(community, patient, session_id: str) -> Consent:
    consent = Consent.objects.create(
        patient=patient,
        kind="recording",
        method="written",
        granted_at=timezone.now(),
        recorded_by=community.users["village_a"],
        recorded_at_organisation=community.village_a,
    )
    for username in ("village_a", "ecg_specialist"):
        response = community.client(username).post(f"{API}live/{session_id}/recording/consent/")
        assert response.status_code == 200, response.json()
    return consent


async def _send_media(session_id: str, token: str, seconds: float) -> RTCPeerConnection:
    """A browser stand-in sending to the recorder. aioice leaves loopback out of its host
    candidates; both peers meet on the machine's other address (eth0 here). No STUN."""
    pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))
    pc.addTransceiver(ToneAudio(), direction="sendonly")
    pc.addTransceiver(PatternVideo(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    response = await AsyncClient().post(
        f"{API}live/{session_id}/recording/offer/",
        {"sdp": pc.localDescription.sdp, "type": "offer"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ice_servers"] == []
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
    deadline = time.monotonic() + 15
    while pc.connectionState != "connected":
        assert time.monotonic() < deadline, pc.connectionState
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    return pc


async def _until_done(recording_id: str, timeout: float = 20) -> Recording:
    deadline = time.monotonic() + timeout
    while True:
        row = await sync_to_async(Recording.objects.get)(external_id=recording_id)
        if row.status in (RecordingStatus.STORED, RecordingStatus.FAILED):
            return row
        assert time.monotonic() < deadline, row.status
        await asyncio.sleep(0.1)


@pytest.fixture
def quick(settings, media):
    settings.HUIZHEN_RECORDING_RECHECK_SECONDS = 0.2
    settings.HUIZHEN_ICE_SERVERS = []
    settings.HUIZHEN_TURN_URLS = []
    yield media
    async_to_sync(recorder.recorders_finish_all)()


def test_recording_is_refused_until_everyone_consents(community, patient):
    body = open_session(community, patient)
    url = f"{API}live/{body['id']}/recording/"
    # nobody consented
    refused = community.client("village_a").post(url)
    assert refused.status_code == 409
    assert refused.json()["code"] == "consent_missing"
    names = {m["role"]: m["name"] for m in refused.json()["missing"]}
    assert set(names) == {"requester", "specialist", "patient"}
    assert all(name in refused.json()["detail"] for name in names.values())
    # the staff agree; the patient's registry consent is still missing
    for username in ("village_a", "ecg_specialist"):
        community.client(username).post(f"{url}consent/")
    assert RecordingAgreement.objects.count() == 2
    still = community.client("village_a").post(url)
    assert still.status_code == 409
    assert [m["role"] for m in still.json()["missing"]] == ["patient"]
    state = community.client("ecg_specialist").get(url).json()
    assert state["patient_consent"] is False and state["recording"] is None
    # outsiders see nothing and change nothing
    assert community.client("other_doctor").post(url).status_code == 404
    assert community.client("other_doctor").get(url).status_code == 404
    assert community.client("other_doctor").post(f"{url}consent/").status_code == 404
    assert Recording.objects.count() == 0
    assert AuditEvent.objects.filter(action="consult.recording.start", outcome="denied").exists()


def test_a_staff_member_not_in_the_session_may_not_start(community, patient):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    response = community.client("township_doctor").post(f"{API}live/{body['id']}/recording/")
    assert response.status_code == 403
    assert Recording.objects.count() == 0


def test_a_consented_call_is_recorded_stored_hashed_and_audited(community, patient, quick):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    started = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    assert started.status_code == 201, started.json()
    recording_id = started.json()["id"]
    again = community.client("ecg_specialist").post(f"{API}live/{body['id']}/recording/")
    assert again.status_code == 409 and again.json()["code"] == "already_recording"
    _, token = AuthToken.objects.create(community.users["village_a"])
    stopper = community.client("ecg_specialist")

    async def scenario():
        pc = await _send_media(body["id"], token, seconds=2.0)
        stop = await sync_to_async(stopper.post)(f"{API}live/{body['id']}/recording/stop/")
        row = await _until_done(recording_id)
        await pc.close()
        return stop, row

    stop, row = async_to_sync(scenario)()
    assert stop.status_code == 202 and stop.json()["status"] in ("stopping", "stored")
    assert row.status == RecordingStatus.STORED, row.stop_reason
    assert row.stop_reason == "stopped"
    assert row.started_by == community.users["village_a"]
    assert row.stopped_by == community.users["ecg_specialist"]
    assert row.consult.external_id == row.session.consult.external_id
    assert row.storage_key.endswith(".mkv") and default_storage.exists(row.storage_key)
    with default_storage.open(row.storage_key, "rb") as handle:
        data = handle.read()
    assert len(data) == row.size > 0
    assert hashlib.sha256(data).hexdigest() == row.sha256
    assert row.duration and row.duration > 0.5
    days = (row.retention_until - row.stopped_at).days
    assert days == 1095
    # playable: decode some video and some audio
    with av.open(default_storage.path(row.storage_key)) as container:
        kinds = {s.type for s in container.streams}
        assert {"audio", "video"} <= kinds
        video = audio = 0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video += 1
            else:
                audio += 1
        assert video >= 10 and audio >= 10
    stored = AuditEvent.objects.get(action="consult.recording.stored")
    assert stored.detail["sha256"] == row.sha256
    assert stored.patient_id == patient.external_id
    assert patient.name not in str(stored.detail)

    # list and download: people who may read the consult; 404 to others
    consult_id = body["consult"]
    listed = community.client("ecg_specialist").get(f"{API}consults/{consult_id}/recordings/")
    assert listed.status_code == 200
    assert [r["sha256"] for r in listed.json()] == [row.sha256]
    download = community.client("village_a").get(
        f"{API}consults/{consult_id}/recordings/{recording_id}/file/"
    )
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == row.sha256
    reads = AuditEvent.objects.filter(action="consult.recording.read", outcome="success")
    assert reads.count() == 1
    outsider = community.client("other_doctor")
    assert outsider.get(f"{API}consults/{consult_id}/recordings/").status_code == 404
    file_url = f"{API}consults/{consult_id}/recordings/{recording_id}/file/"
    assert outsider.get(file_url).status_code == 404
    assert outsider.get(f"{API}consults/{consult_id}/recordings/nonsense/file/").status_code == 404
    assert reads.count() == 1  # nothing more was read
    assert AuditEvent.objects.filter(action="consult.recording.read", outcome="denied").count() == 2


def test_revoking_the_patients_consent_stops_the_recording(community, patient, quick):
    body = open_session(community, patient)
    consent = _consent_all(community, patient, body["id"])
    started = community.client("ecg_specialist").post(f"{API}live/{body['id']}/recording/")
    assert started.status_code == 201
    _, token = AuthToken.objects.create(community.users["ecg_specialist"])
    revoker = principal_for(community.users["village_a"])

    async def scenario():
        pc = await _send_media(body["id"], token, seconds=1.0)
        await sync_to_async(consent_revoke)(
            principal=revoker,
            patient_id=patient.external_id,
            consent_id=consent.external_id,
            reason="患者撤回",
        )
        row = await _until_done(started.json()["id"])
        await pc.close()
        return row

    row = async_to_sync(scenario)()
    assert row.status == RecordingStatus.STORED
    assert row.stop_reason == "consent_missing"
    assert default_storage.exists(row.storage_key)


def test_a_newcomer_without_agreement_stops_the_recording(community, patient):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    started = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    assert started.status_code == 201
    guest = staff(community, "mdt_guest", community.ecg, "specialist")
    invited = community.client("ecg_specialist").post(
        f"{API}live/{body['id']}/participants/", {"staff": str(guest.staff.external_id)}
    )
    assert invited.status_code == 201
    assert recording.recording_check(recording_id=started.json()["id"]) == "consent_missing"
    row = Recording.objects.get()
    # nobody had sent media yet: nothing to keep
    assert row.status == RecordingStatus.FAILED and row.stop_reason == "no_media"


def test_the_offer_endpoint_refuses_outsiders_and_bad_input(community, patient, quick):
    body = open_session(community, patient)
    url = f"{API}live/{body['id']}/recording/offer/"
    _, outsider = AuthToken.objects.create(community.users["other_doctor"])
    _, insider = AuthToken.objects.create(community.users["village_a"])

    async def scenario():
        client = AsyncClient()
        anonymous = await client.post(
            url, {"sdp": "v=0\r\nm=audio"}, content_type="application/json"
        )
        garbage = await client.post(url, "not json", content_type="application/json")
        other = await client.post(
            url,
            {"sdp": "v=0\r\nm=audio", "type": "offer"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {outsider}"},
        )
        idle = await client.post(
            url,
            {"sdp": "v=0\r\nm=audio", "type": "offer"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {insider}"},
        )
        bad_session = await client.post(
            f"{API}live/not-a-uuid/recording/offer/",
            {"sdp": "v=0\r\nm=audio", "type": "offer"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {insider}"},
        )
        await sync_to_async(_consent_all)(community, patient, body["id"])
        started = await sync_to_async(community.client("village_a").post)(
            f"{API}live/{body['id']}/recording/"
        )
        assert started.status_code == 201
        malformed = await client.post(
            url,
            {"sdp": "v=0\r\nm=audio", "type": "offer"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {insider}"},
        )
        await recorder.recorders_finish_all()
        codes = (anonymous, garbage, other, idle, bad_session, malformed)
        return [r.status_code for r in codes]

    assert async_to_sync(scenario)() == [401, 400, 404, 409, 404, 400]
    # the recorder never received media: nothing is kept
    assert Recording.objects.get().status == RecordingStatus.FAILED


def test_expired_recordings_lose_their_file_but_keep_the_row(community, patient, media):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    started = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    row = Recording.objects.get(external_id=started.json()["id"])
    key = default_storage.save("recordings/x/old.mkv", ContentFile(b"media"))
    now = timezone.now()
    Recording.objects.filter(pk=row.pk).update(
        status=RecordingStatus.STORED,
        stopped_at=now - timedelta(days=1100),
        storage_key=key,
        size=5,
        sha256=hashlib.sha256(b"media").hexdigest(),
        retention_until=now - timedelta(days=5),
    )
    assert recording.recordings_purge_expired() == 1
    assert recording.recordings_purge_expired() == 0  # idempotent
    row.refresh_from_db()
    assert row.deleted_at is not None and not default_storage.exists(key)
    deleted = AuditEvent.objects.get(action="consult.recording.delete")
    assert deleted.detail["sha256"] == row.sha256
    gone = community.client("village_a").get(
        f"{API}consults/{body['consult']}/recordings/{row.external_id}/file/"
    )
    assert gone.status_code == 404


def test_two_participants_are_joined_into_one_file(community, patient, quick):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    started = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    assert started.status_code == 201
    _, first = AuthToken.objects.create(community.users["village_a"])
    _, second = AuthToken.objects.create(community.users["ecg_specialist"])
    stopper = community.client("village_a")

    async def scenario():
        a = await _send_media(body["id"], first, seconds=0.5)
        b = await _send_media(body["id"], second, seconds=1.5)
        await sync_to_async(stopper.post)(f"{API}live/{body['id']}/recording/stop/")
        row = await _until_done(started.json()["id"])
        await a.close()
        await b.close()
        return row

    row = async_to_sync(scenario)()
    assert row.status == RecordingStatus.STORED
    path = default_storage.path(row.storage_key)
    with av.open(path) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "audio", "video", "video"]
    for index in range(2):  # each participant's video decodes
        with av.open(path) as container:
            frames = sum(1 for _ in container.decode(video=index))
        assert frames >= 5, (index, frames)


def test_a_recording_whose_recorder_was_lost_is_failed_by_the_sweep(community, patient):
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    started = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    Recording.objects.filter(external_id=started.json()["id"]).update(
        recorder_node="gone:1:x", started_at=timezone.now() - timedelta(hours=5)
    )
    assert recording.recordings_fail_stale() == 1
    row = Recording.objects.get()
    assert row.status == RecordingStatus.FAILED and row.stop_reason == "recorder_lost"
    again = community.client("village_a").post(f"{API}live/{body['id']}/recording/")
    assert again.status_code == 201  # the session may be recorded again


def test_the_room_hears_when_recording_starts_and_stops(community, patient):
    channel_layers.backends.clear()  # a layer bound to this test's event loop
    body = open_session(community, patient)
    _consent_all(community, patient, body["id"])
    cookie = _cookie(community.users["ecg_specialist"])
    starter = community.client("village_a")

    async def scenario():
        socket = _socket(body["id"], cookie)
        await socket.connect()
        await _until(socket, "welcome")
        url = f"{API}live/{body['id']}/recording/"
        await database_sync_to_async(starter.post)(url)
        on = await _until(socket, "recording")
        await database_sync_to_async(starter.post)(f"{url}stop/")
        off = await _until(socket, "recording")
        return on, off

    try:
        on, off = async_to_sync(_run)(scenario)
    finally:
        channel_layers.backends.clear()
    assert on["from"] == "server" and on["payload"]["state"] == "recording"
    assert off["payload"] == {"id": on["payload"]["id"], "state": "failed"}  # no media sent
