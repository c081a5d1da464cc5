"""Resumable uploads: chunks at the server's offset, resume after a drop, type and size."""

from __future__ import annotations

import hashlib

from django.core.files.storage import default_storage

from consult.models import ConsultAttachment

from .conftest import URL, draft

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
EXE = b"MZ\x90\x00" + b"\x00" * 200


def _start(client, cid, size, kind="photo", name="ecg.png"):
    return client.post(
        f"{URL}{cid}/attachments/uploads/",
        {"kind": kind, "filename": name, "size": size},
        format="json",
    )


def _chunk(client, cid, aid, data, start, total):
    return client.patch(
        f"{URL}{cid}/attachments/{aid}/upload/",
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {start}-{start + len(data) - 1}/{total}",
    )


def test_a_chunked_upload_resumes_where_the_server_stopped(community, patient, media):
    consult = draft(community, patient)
    client = community.client("village_a")
    started = _start(client, consult["id"], len(PNG))
    assert started.status_code == 201
    aid = started.json()["id"]
    first = _chunk(client, consult["id"], aid, PNG[:4000], 0, len(PNG))
    assert first.json()["received_bytes"] == 4000
    # The connection dropped; a chunk sent at the wrong offset is refused...
    skipped = _chunk(client, consult["id"], aid, PNG[6000:], 6000, len(PNG))
    assert skipped.status_code == 409 and "4000" in skipped.json()["detail"]
    # ...the client asks where to resume, and a repeated chunk is harmless.
    offset = client.get(f"{URL}{consult['id']}/attachments/{aid}/upload/").json()
    assert offset["received_bytes"] == 4000 and offset["status"] == "uploading"
    assert _chunk(client, consult["id"], aid, PNG[:4000], 0, len(PNG)).status_code == 200
    done = _chunk(client, consult["id"], aid, PNG[4000:], 4000, len(PNG))
    assert done.status_code == 200 and done.json()["status"] == "complete"
    assert done.json()["content_type"] == "image/png"
    assert done.json()["sha256"] == hashlib.sha256(PNG).hexdigest()
    row = ConsultAttachment.objects.get(external_id=aid)
    with default_storage.open(row.storage_key, "rb") as handle:
        assert handle.read() == PNG
    assert not default_storage.exists(f"consult/uploads/{aid}/part-{0:012d}")
    file = community.client("ecg_specialist").get(f"{URL}{consult['id']}/attachments/{aid}/file/")
    assert file.status_code == 404  # a draft is not at the centre yet
    mine = client.get(f"{URL}{consult['id']}/attachments/{aid}/file/")
    assert b"".join(mine.streaming_content) == PNG


def test_an_exe_renamed_jpg_is_refused(community, patient, media):
    consult = draft(community, patient)
    client = community.client("village_a")
    aid = _start(client, consult["id"], len(EXE), name="photo.jpg").json()["id"]
    refused = _chunk(client, consult["id"], aid, EXE, 0, len(EXE))
    assert refused.status_code == 400 and refused.json()["code"] == "file_type"
    assert ConsultAttachment.objects.get(external_id=aid).received_bytes == 0
    # A PDF is not a photo either.
    pdf = b"%PDF-1.7\n" + b"0" * 100
    aid = _start(client, consult["id"], len(pdf), name="x.png").json()["id"]
    assert _chunk(client, consult["id"], aid, pdf, 0, len(pdf)).status_code == 400
    aid = _start(client, consult["id"], len(pdf), kind="lab_sheet", name="lab.pdf").json()["id"]
    ok = _chunk(client, consult["id"], aid, pdf, 0, len(pdf))
    assert ok.json()["content_type"] == "application/pdf"


def test_size_limit_and_who_may_upload(community, patient, media, settings):
    settings.HUIZHEN_CONSULT_MAX_UPLOAD_BYTES = 1000
    consult = draft(community, patient)
    too_big = _start(community.client("village_a"), consult["id"], 1001)
    assert too_big.status_code == 400 and "size" in too_big.json()["fields"]
    assert _start(community.client("village_b"), consult["id"], 10).status_code == 404
    assert not ConsultAttachment.objects.exists()
