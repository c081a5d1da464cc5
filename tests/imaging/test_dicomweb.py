"""DICOMweb (PS3.18) through Django's test client: STOW-RS, QIDO-RS, WADO-RS, WADO-URI,
access and audit. The end-to-end run with the dicomweb-client library over a real socket
is in test_dicomweb_live.py."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage
from django.test import AsyncClient
from knox.models import AuthToken
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import get_frame
from rest_framework.test import APIClient

from imaging.dicomweb import multipart
from imaging.dicomweb.http import NotAcceptable, parse_accept
from imaging.dicomweb.wado import plan_frames
from imaging.models import Instance, Study, StudyView
from imaging.services import StorageFull
from registry.models import AuditEvent
from tests.imaging.dicom_factory import make_ct_series, make_dx, make_ecg, uid, with_changes

BOUNDARY = "huizhen-test-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FAILED, REFERENCED, FAILURE_REASON, WARNING_REASON = "00081198", "00081199", "00081197", "00081196"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Each test stores into its own folder (and sees nothing of others)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.HUIZHEN_DICOMWEB_CORS_ORIGINS = ["https://viewer.example.org"]
    return tmp_path / "media"


def stow_body(objects: list[bytes]) -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + raw + b"\r\n"
        for raw in objects
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def stow(client: APIClient, objects: list[bytes], study: str | None = None):
    url = "/dicomweb/studies" + (f"/{study}" if study else "")
    return client.post(url, data=stow_body(objects), content_type=STOW_TYPE)


def content(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def split_multipart(response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related response, as (headers, bytes)."""
    media, _, rest = response["Content-Type"].partition(";")
    assert media == "multipart/related"
    params = dict(p.strip().split("=", 1) for p in rest.split(";") if "=" in p)
    boundary = params["boundary"].strip('"').encode()
    body = content(response)
    chunks = body.split(b"--" + boundary)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().strip().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert data.endswith(b"\r\n")
        parts.append((headers, data[:-2]))
    return parts


def token_client(user) -> APIClient:
    _, token = AuthToken.objects.create(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def ct(community):
    """A 3-slice CT study with a GB18030 patient name, stored through STOW-RS by the
    village clinic that made it."""
    objects = make_ct_series(3, patient_name="王^小明", patient_id="GB001", charset="GB18030")
    response = stow(community.client("village_a"), objects)
    assert response.status_code == 200, content(response)
    ds = pydicom.dcmread(io.BytesIO(objects[0]))
    return {
        "objects": objects,
        "study": ds.StudyInstanceUID,
        "series": ds.SeriesInstanceUID,
        "sops": [pydicom.dcmread(io.BytesIO(o)).SOPInstanceUID for o in objects],
    }


def instance_path(ct: dict, index: int = 0) -> str:
    return f"/dicomweb/studies/{ct['study']}/series/{ct['series']}/instances/{ct['sops'][index]}"


# --- STOW-RS ----------------------------------------------------------------------------------


def test_stow_answers_each_stored_instance_with_its_retrieve_url(community, ct):
    response = stow(community.client("village_a"), ct["objects"][:1])  # again: a duplicate
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    body = json.loads(content(response))
    item = body[REFERENCED]["Value"][0]
    assert item["00081155"]["Value"] == [ct["sops"][0]]
    assert item["00081190"]["Value"][0].endswith(instance_path(ct))
    assert body["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{ct['study']}")
    assert FAILED not in body
    assert Instance.objects.count() == 3
    assert Study.objects.get().organisation == community.village_a


def test_stow_refuses_bad_objects_one_by_one_and_stores_nothing(community, media):
    good = make_ct_series(1, patient_id="BAD")[0]
    bad = [
        good[: len(good) // 2],  # truncated
        b"this is not a DICOM file" * 10,  # not DICOM
        with_changes(good, SOPInstanceUID=None),  # a missing UID
        with_changes(good, SOPInstanceUID="1.2.3/../../etc/passwd"),  # path characters
    ]
    response = stow(community.client("village_a"), bad)
    assert response.status_code == 409
    body = json.loads(content(response))
    failures = body[FAILED]["Value"]
    assert len(failures) == 4
    assert all(f[FAILURE_REASON]["Value"][0] in (0xC000, 0xA900, 0xA700) for f in failures)
    assert REFERENCED not in body
    assert "Warning" in response
    assert Instance.objects.count() == 0 and Study.objects.count() == 0
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_stow_with_some_failures_is_accepted_with_202(community):
    good = make_ct_series(1, patient_id="MIX")[0]
    response = stow(community.client("village_a"), [good, b"garbage" * 40])
    assert response.status_code == 202
    body = json.loads(content(response))
    assert len(body[REFERENCED]["Value"]) == 1 and len(body[FAILED]["Value"]) == 1


def test_stow_of_another_object_under_a_known_uid_is_a_warning(community, ct):
    changed = with_changes(ct["objects"][0], StudyDescription="Changed")
    response = stow(community.client("village_a"), [changed])
    assert response.status_code == 202
    item = json.loads(content(response))[REFERENCED]["Value"][0]
    assert item[WARNING_REASON]["Value"] == [0xB006]


def test_stow_to_a_study_url_refuses_instances_of_another_study(community):
    objects = make_ct_series(1, patient_id="URL")
    response = stow(community.client("village_a"), objects, study=uid("another study"))
    assert response.status_code == 400
    failure = json.loads(content(response))[FAILED]["Value"][0]
    assert failure[FAILURE_REASON]["Value"] == [0xA900]
    assert Instance.objects.count() == 0


def test_stow_needs_multipart_related_dicom(community):
    client = community.client("village_a")
    assert (
        client.post("/dicomweb/studies", data=b"x", content_type="application/dicom").status_code
        == 415
    )
    response = client.post(
        "/dicomweb/studies",
        data=b"{}",
        content_type=f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    response = client.post("/dicomweb/studies", data=b"no boundary here", content_type=STOW_TYPE)
    assert response.status_code == 400


@pytest.mark.parametrize("username,status", [("county_admin", 403), (None, 401)])
def test_only_clinical_staff_may_store(community, username, status):
    client = community.client(username) if username else APIClient()
    response = stow(client, make_ct_series(1, patient_id="ROLE"))
    assert response.status_code == status
    assert Instance.objects.count() == 0


# --- QIDO-RS ----------------------------------------------------------------------------------


def test_qido_finds_a_gb18030_name_by_wildcard_and_returns_it_as_utf8(community, ct):
    response = community.client("township_doctor").get(
        "/dicomweb/studies", {"PatientName": "王*", "includefield": "00080070,PatientAge"}
    )
    assert response.status_code == 200
    assert "王^小明".encode() in response.content
    [study] = response.json()
    assert study["00100010"]["Value"] == [{"Alphabetic": "王^小明"}]
    assert study["0020000D"]["Value"] == [ct["study"]]
    assert study["00080005"]["Value"] == ["ISO_IR 192"]
    assert study["00201208"]["Value"] == [3]
    assert study["00080070"]["Value"] == ["Huizhen test"]  # includefield from an instance
    assert study["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{ct['study']}")


def test_qido_matches_tags_dates_uid_lists_and_pages(community, ct):
    client = community.client("village_a")
    other = make_ct_series(1, patient_name="Li^Na", patient_id="P9", study_date="20230105")
    stow(client, other)
    get = lambda **params: client.get("/dicomweb/studies", params).json()  # noqa: E731
    assert [s["00100020"]["Value"][0] for s in get()] == ["GB001", "P9"]  # StudyDate desc
    assert len(get(**{"00100020": "P9"})) == 1
    assert len(get(StudyDate="20230101-20230131")) == 1
    assert len(get(StudyDate="-20221231")) == 0
    other_uid = pydicom.dcmread(io.BytesIO(other[0])).StudyInstanceUID
    assert len(get(StudyInstanceUID=f"{ct['study']},{other_uid}")) == 2
    assert len(get(ModalitiesInStudy="CT")) == 2
    assert len(get(limit="1", offset="1")) == 1
    assert get(PatientName="li^na", fuzzymatching="true")[0]["00100020"]["Value"] == ["P9"]


def test_qido_series_and_instances_with_includefield(community, ct):
    client = community.client("village_a")
    series = client.get(f"/dicomweb/studies/{ct['study']}/series", {"includefield": "all"})
    assert series.status_code == 200
    [item] = series.json()
    assert item["0020000E"]["Value"] == [ct["series"]]
    assert item["00201209"]["Value"] == [3]
    assert item["00080070"]["Value"] == ["Huizhen test"]
    [flat] = client.get("/dicomweb/series", {"Modality": "CT", "includefield": "all"}).json()
    assert flat == item
    instances = client.get(
        f"/dicomweb/studies/{ct['study']}/series/{ct['series']}/instances",
        {"includefield": "00200032"},
    ).json()
    assert [i["00080018"]["Value"][0] for i in instances] == ct["sops"]
    assert instances[0]["00200032"]["Value"] == [0.0, 0.0, 0.0]
    assert "7FE00010" not in instances[0]
    flat = client.get("/dicomweb/instances", {"SOPInstanceUID": ct["sops"][1]}).json()
    assert flat[0]["00200013"]["Value"] == [2]
    by_study = client.get(f"/dicomweb/studies/{ct['study']}/instances", {"InstanceNumber": "3"})
    assert [i["00080018"]["Value"][0] for i in by_study.json()] == [ct["sops"][2]]


def test_qido_empty_is_200_with_an_empty_list_and_bad_queries_are_400(community, ct):
    client = community.client("village_a")
    empty = client.get("/dicomweb/studies", {"PatientID": "nobody"})
    assert empty.status_code == 200 and empty.json() == []
    for params in (
        {"NotAKeyword": "1"},
        {"limit": "-1"},
        {"fuzzymatching": "maybe"},
        {"StudyInstanceUID": "1.2.x"},
        {"SeriesNumber": "one"},
    ):
        response = client.get("/dicomweb/series", params)
        assert response.status_code == 400, params
        assert response.json()["detail"]
    ignored = client.get("/dicomweb/studies", {"00091001": "private", "SOPInstanceUID": "1.2"})
    assert ignored.status_code == 200 and "Warning" in ignored
    xml = client.get(
        "/dicomweb/studies", HTTP_ACCEPT='multipart/related; type="application/dicom+xml"'
    )
    assert xml.status_code == 406


def test_qido_is_audited_with_keys_but_not_values(community, ct):
    community.client("village_a").get("/dicomweb/studies", {"PatientName": "王*"})
    row = AuditEvent.objects.filter(action="imaging.study.search").latest("id")
    assert row.detail == {"criteria": ["PatientName"]}
    assert "王" not in json.dumps(row.detail, ensure_ascii=False)


# --- access -------------------------------------------------------------------------------------


OUTSIDER_PATHS = [
    "",
    "/metadata",
    "/rendered",
    "/thumbnail",
    "/frames/1",
    "/frames/1/rendered",
    "/bulkdata/7FE00010",
]


def test_another_organisation_finds_nothing_and_gets_404_like_for_nothing(community, ct):
    outsider = community.client("other_doctor")
    assert outsider.get("/dicomweb/studies").json() == []
    assert outsider.get("/dicomweb/series").json() == []
    assert outsider.get("/dicomweb/instances", {"SOPInstanceUID": ct["sops"][0]}).json() == []
    assert outsider.get(f"/dicomweb/studies/{ct['study']}/series").json() == []
    missing = instance_path(ct).replace(ct["sops"][0], uid("no such instance"))
    for suffix in OUTSIDER_PATHS:
        hidden = outsider.get(instance_path(ct) + suffix)
        absent = community.client("village_a").get(missing + suffix)
        assert hidden.status_code == absent.status_code == 404, suffix
        assert hidden.json() == absent.json()
    for path in (
        f"/dicomweb/studies/{ct['study']}",
        f"/dicomweb/studies/{ct['study']}/metadata",
        f"/dicomweb/studies/{ct['study']}/series/{ct['series']}",
        f"/dicomweb/studies/{ct['study']}/thumbnail",
    ):
        assert outsider.get(path).status_code == 404, path
    uri = outsider.get(
        "/dicomweb/wado",
        {
            "requestType": "WADO",
            "studyUID": ct["study"],
            "seriesUID": ct["series"],
            "objectUID": ct["sops"][0],
        },
    )
    assert uri.status_code == 404
    denied = AuditEvent.objects.filter(action="imaging.study.view", outcome="denied")
    assert denied.exists() and denied.first().actor_username == "other_doctor"
    assert not StudyView.objects.filter(user=community.users["other_doctor"]).exists()


def test_an_organisation_the_user_does_not_belong_to_is_refused(community, ct):
    response = community.client("county_doctor").get(
        "/dicomweb/studies", HTTP_X_HUIZHEN_ORGANISATION=str(community.other_county.external_id)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "not_member"


def test_the_organisations_above_the_clinic_see_the_study(community, ct):
    for username in ("township_doctor", "county_doctor"):
        assert community.client(username).get(instance_path(ct) + "/metadata").status_code == 200
    assert community.client("ecg_specialist").get(instance_path(ct)).status_code == 404


def test_one_audit_entry_per_study_per_session_however_many_frames(community, ct):
    client = token_client(community.users["county_doctor"])
    for index in range(3):
        for _ in range(4):
            assert client.get(instance_path(ct, index) + "/frames/1").status_code == 200
    assert client.get(f"/dicomweb/studies/{ct['study']}/metadata").status_code == 200
    views = AuditEvent.objects.filter(action="imaging.study.view", actor_username="county_doctor")
    assert views.count() == 1
    study = Study.objects.get()
    assert views.get().object_id == str(study.external_id)
    token_client(community.users["county_doctor"]).get(instance_path(ct) + "/frames/1")
    assert views.count() == 2  # a new token is a new session


# --- WADO-RS ----------------------------------------------------------------------------------


def test_retrieve_instance_series_and_study_byte_identical(community, ct):
    client = community.client("village_a")
    response = client.get(
        instance_path(ct), HTTP_ACCEPT='multipart/related; type="application/dicom"'
    )
    assert response.status_code == 200
    [(headers, data)] = split_multipart(response)
    assert data == ct["objects"][0]
    assert headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert headers["content-location"].endswith(instance_path(ct))
    series = client.get(f"/dicomweb/studies/{ct['study']}/series/{ct['series']}")
    assert [p[1] for p in split_multipart(series)] == ct["objects"]
    study = client.get(f"/dicomweb/studies/{ct['study']}", HTTP_ACCEPT="*/*")
    assert [p[1] for p in split_multipart(study)] == ct["objects"]
    single = client.get(instance_path(ct), HTTP_ACCEPT="application/dicom")
    assert content(single) == ct["objects"][0]


def _store_file(community, name: str) -> tuple[bytes, str]:
    raw = open(get_testdata_file(name), "rb").read()
    response = stow(community.client("village_a"), [raw])
    assert response.status_code == 200, content(response)
    ds = pydicom.dcmread(io.BytesIO(raw))
    path = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    return raw, path


def test_transfer_syntax_negotiation(community):
    client = community.client("village_a")
    raw, path = _store_file(community, "MR_small_RLE.dcm")
    as_stored = client.get(
        path, HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    assert split_multipart(as_stored)[0][1] == raw
    default = split_multipart(client.get(path))[0]  # lossless RLE: Explicit VR Little Endian
    assert default[0]["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")
    decoded = pydicom.dcmread(io.BytesIO(default[1]))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (decoded.pixel_array == pydicom.dcmread(io.BytesIO(raw)).pixel_array).all()
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert client.get(path, HTTP_ACCEPT=jpeg).status_code == 406


def test_metadata_has_absolute_bulk_data_urls_that_resolve(community):
    client = community.client("village_a")
    ecg = make_ecg(patient_id="ECG1")
    assert stow(client, [ecg]).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(ecg))
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    response = client.get(base + "/metadata")
    assert response.status_code == 200
    [item] = response.json()
    waveform = item["54000100"]["Value"][0]["54001010"]
    url = waveform["BulkDataURI"]
    assert url.startswith("http://testserver/dicomweb/studies/")
    assert url.endswith(f"/instances/{ds.SOPInstanceUID}/bulkdata/54000100/0/54001010")
    bulk = client.get(url.replace("http://testserver", ""))
    assert bulk.status_code == 200
    [(_, data)] = split_multipart(bulk)
    assert data == ds.WaveformSequence[0].WaveformData
    assert client.get(url.replace("http://testserver", "").replace("/0/", "/5/")).status_code == 404


def test_ct_metadata_and_pixel_bulk_data(community, ct):
    client = community.client("village_a")
    [item] = client.get(instance_path(ct) + "/metadata").json()
    assert item["00100010"]["Value"] == [{"Alphabetic": "王^小明"}]
    assert item["00080005"]["Value"] == ["ISO_IR 192"]
    pixel_url = item["7FE00010"]["BulkDataURI"]
    assert pixel_url.endswith(instance_path(ct) + "/bulkdata/7FE00010")
    [(_, data)] = split_multipart(client.get(pixel_url.replace("http://testserver", "")))
    assert data == pydicom.dcmread(io.BytesIO(ct["objects"][0])).PixelData
    series = client.get(f"/dicomweb/studies/{ct['study']}/series/{ct['series']}/metadata").json()
    assert len(series) == 3


def test_frames_native_and_compressed(community, ct):
    client = community.client("village_a")
    octets = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    response = client.get(instance_path(ct) + "/frames/1", HTTP_ACCEPT=octets)
    [(headers, data)] = split_multipart(response)
    assert data == pydicom.dcmread(io.BytesIO(ct["objects"][0])).PixelData
    assert (
        headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert client.get(instance_path(ct) + "/frames/2").status_code == 400
    assert client.get(instance_path(ct) + "/frames/x").status_code == 400
    raw, path = _store_file(community, "JPEG2000.dcm")
    [(headers, data)] = split_multipart(client.get(path + "/frames/1", HTTP_ACCEPT=octets))
    ds = pydicom.dcmread(io.BytesIO(raw))
    assert data == get_frame(ds.PixelData, 0, number_of_frames=1)
    assert (
        headers["content-type"]
        == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.91"
    )
    jp2 = client.get(path + "/frames/1", HTTP_ACCEPT='multipart/related; type="image/jp2"')
    assert split_multipart(jp2)[0][0]["content-type"].startswith("image/jp2")
    raw, path = _store_file(community, "MR_small_RLE.dcm")
    native = client.get(
        path + "/frames/1", HTTP_ACCEPT='multipart/related; type="application/octet-stream"'
    )
    [(headers, data)] = split_multipart(native)
    assert len(data) == 64 * 64 * 2 and headers["content-type"].endswith("1.2.840.10008.1.2.1")


def _image(response) -> Image.Image:
    assert response.status_code == 200, content(response)
    return Image.open(io.BytesIO(content(response)))


def test_rendered_jpeg_and_png_with_viewport_and_window(community, ct):
    client = community.client("village_a")
    jpeg = _image(client.get(instance_path(ct) + "/rendered"))
    assert jpeg.format == "JPEG" and jpeg.size == (64, 64)
    png = _image(
        client.get(
            instance_path(ct) + "/rendered",
            {"viewport": "128,128", "window": "40,400,linear"},
            HTTP_ACCEPT="image/png",
        )
    )
    assert png.format == "PNG" and png.size == (128, 128)
    frame = _image(client.get(instance_path(ct) + "/frames/1/rendered", {"accept": "image/png"}))
    assert frame.format == "PNG"
    for bad in ({"window": "40"}, {"viewport": "0,10"}, {"quality": "101"}):
        assert client.get(instance_path(ct) + "/rendered", bad).status_code == 400
    assert client.get(instance_path(ct) + "/rendered", HTTP_ACCEPT="image/gif").status_code == 406


def test_rendered_monochrome1_and_compressed_images(community):
    client = community.client("village_a")
    dx = make_dx(patient_id="DX1")
    stow(client, [dx])
    ds = pydicom.dcmread(io.BytesIO(dx))
    path = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    assert _image(client.get(path + "/rendered", {"viewport": "40,48"})).size == (40, 48)
    for name, mode in (("JPEG2000.dcm", "L"), ("SC_rgb_jpeg_dcmtk.dcm", "RGB")):
        _, path = _store_file(community, name)
        image = _image(client.get(path + "/rendered", HTTP_ACCEPT="image/png"))
        assert image.mode == mode
        assert image.getextrema() != ((0, 0),) * len(mode)


def test_thumbnails_at_every_level(community, ct):
    client = community.client("village_a")
    for path in (
        f"/dicomweb/studies/{ct['study']}/thumbnail",
        f"/dicomweb/studies/{ct['study']}/series/{ct['series']}/thumbnail",
        instance_path(ct) + "/thumbnail",
        instance_path(ct) + "/frames/1/thumbnail",
    ):
        image = _image(client.get(path))
        assert image.format == "JPEG" and max(image.size) == 128
    small = _image(client.get(f"/dicomweb/studies/{ct['study']}/thumbnail", {"viewport": "32,32"}))
    assert small.size == (32, 32)


def test_decoding_beyond_the_pixel_limit_is_refused(community, ct, settings):
    settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES = 1000
    response = community.client("village_a").get(instance_path(ct) + "/rendered")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES = 1 << 30
    _, path = _store_file(community, "MR_small_RLE.dcm")
    settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES = 1000
    client = community.client("village_a")
    assert client.get(path).status_code == 413  # decompression for the default syntax
    as_stored = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    assert client.get(path, HTTP_ACCEPT=as_stored).status_code == 200


def test_wado_uri(community, ct):
    client = community.client("village_a")
    params = {
        "requestType": "WADO",
        "studyUID": ct["study"],
        "seriesUID": ct["series"],
        "objectUID": ct["sops"][0],
    }
    image = _image(client.get("/dicomweb/wado", params))
    assert image.format == "JPEG"
    sized = _image(client.get("/dicomweb/wado", {**params, "rows": "32", "columns": "32"}))
    assert sized.size == (32, 32)
    png = _image(client.get("/dicomweb/wado", {**params, "contentType": "image/png"}))
    assert png.format == "PNG"
    dicom = client.get("/dicomweb/wado", {**params, "contentType": "application/dicom"})
    assert dicom["Content-Type"] == "application/dicom"
    assert content(dicom) == ct["objects"][0]
    assert client.get("/dicomweb/wado", {**params, "requestType": "X"}).status_code == 400
    assert client.get("/dicomweb/wado", {"requestType": "WADO"}).status_code == 400
    assert client.get("/dicomweb/wado", {**params, "contentType": "text/html"}).status_code == 406


# --- CORS ---------------------------------------------------------------------------------------


def test_cors_preflight_and_headers_for_allowed_origins_only(community, ct):
    client = APIClient()
    preflight = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="https://viewer.example.org",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert "GET" in preflight["Access-Control-Allow-Methods"]
    stranger = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in stranger
    response = community.client("village_a").get(
        "/dicomweb/studies", HTTP_ORIGIN="https://viewer.example.org"
    )
    assert response["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    assert "Warning" in response["Access-Control-Expose-Headers"]
    unauthenticated = client.get("/dicomweb/studies", HTTP_ORIGIN="https://viewer.example.org")
    assert unauthenticated.status_code == 401
    assert unauthenticated["Access-Control-Allow-Origin"] == "https://viewer.example.org"


def test_stored_files_are_where_the_index_says(ct):
    for instance in Instance.objects.all():
        assert default_storage.exists(instance.storage_key)


# --- performance and ASGI -------------------------------------------------------------------------


def test_searches_and_retrieves_take_a_fixed_number_of_queries(
    community, ct, django_assert_max_num_queries
):
    client = community.client("village_a")
    for n in range(4):
        stow(client, make_ct_series(2, patient_id=f"Q{n}", study_date=f"2024010{n + 1}"))
    with django_assert_max_num_queries(16):
        studies = client.get("/dicomweb/studies", {"includefield": "all"}).json()
    assert len(studies) == 5
    with django_assert_max_num_queries(16):
        assert len(client.get("/dicomweb/series", {"includefield": "all"}).json()) == 5
    with django_assert_max_num_queries(16):
        assert len(client.get("/dicomweb/instances").json()) == 11
    with django_assert_max_num_queries(16):
        assert len(split_multipart(client.get(f"/dicomweb/studies/{ct['study']}"))) == 3
    with django_assert_max_num_queries(16):
        client.get(f"/dicomweb/studies/{ct['study']}/metadata")


def test_stow_and_streamed_retrieve_under_asgi(community):
    """Under ASGI the body is streamed through an async iterator (a sync one would be
    gathered in memory by Django)."""
    objects = make_ct_series(2, patient_id="ASGI")
    ds = pydicom.dcmread(io.BytesIO(objects[1]))
    path = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )

    async def run():
        client = AsyncClient()
        await client.aforce_login(community.users["village_a"])
        stored = await client.post(
            "/dicomweb/studies", data=stow_body(objects), content_type=STOW_TYPE
        )
        retrieved = await client.get(path)
        assert retrieved.is_async
        body = b"".join([chunk async for chunk in retrieved.streaming_content])
        return stored, retrieved, body

    stored, retrieved, body = async_to_sync(run)()
    assert stored.status_code == 200
    assert retrieved.status_code == 200
    retrieved.streaming_content = [body]
    assert [p[1] for p in split_multipart(retrieved)] == [objects[1]]


def test_a_full_archive_answers_507_and_keeps_nothing(community, monkeypatch):
    def full(raw, *, source):
        raise StorageFull()

    monkeypatch.setattr("imaging.dicomweb.stow.store_instance", full)
    response = stow(community.client("village_a"), make_ct_series(2, patient_id="FULL"))
    assert response.status_code == 507
    failures = json.loads(content(response))[FAILED]["Value"]
    assert [f[FAILURE_REASON]["Value"] for f in failures] == [[0xA700], [0xA700]]
    assert failures[0]["00081155"]["Value"]  # the UIDs of what was refused are named


# --- pure parts -------------------------------------------------------------------------------


def test_accept_headers_as_viewers_send_them():
    [octets] = parse_accept("multipart/related; type=application/octet-stream; transfer-syntax=*")
    assert (octets.media_type, octets.part_type, octets.transfer_syntax) == (
        "multipart/related",
        "application/octet-stream",
        "*",
    )
    ranges = parse_accept('image/png;q=0.5, multipart/related; type="image/jpeg", text/html;q=0')
    assert [r.single_or_part_type() for r in ranges] == ["image/jpeg", "image/png"]


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_multipart_reader_survives_any_chunking_and_bounds_parts(monkeypatch, chunk):
    monkeypatch.setattr(multipart, "READ_CHUNK", max(chunk, 2))
    parts = [b"", b"\r\n--not-the-boundary\r\n", bytes(range(256)) * 40]
    body = stow_body(parts)
    got = list(multipart.iter_parts(io.BytesIO(body).read, BOUNDARY.encode(), max_part_bytes=10**6))
    assert [p.content for p in got] == parts
    got = list(multipart.iter_parts(io.BytesIO(body).read, BOUNDARY.encode(), max_part_bytes=100))
    assert [p.too_large for p in got] == [False, False, True]
    with pytest.raises(multipart.MultipartError):
        list(
            multipart.iter_parts(
                io.BytesIO(body[:-60]).read, BOUNDARY.encode(), max_part_bytes=10**6
            )
        )


def test_frame_transfer_syntax_plans():
    octets = parse_accept('multipart/related; type="application/octet-stream"')
    anything = parse_accept("multipart/related; type=application/octet-stream; transfer-syntax=*")
    assert plan_frames("1.2.840.10008.1.2.1", octets).mode == "stored"
    assert plan_frames("1.2.840.10008.1.2.5", octets).mode == "decode"
    assert plan_frames("1.2.840.10008.1.2.5", anything).content_type.endswith("1.2.840.10008.1.2.5")
    jpeg = parse_accept('multipart/related; type="image/jpeg"')
    assert plan_frames("1.2.840.10008.1.2.4.50", jpeg).content_type.startswith("image/jpeg")
    with pytest.raises(NotAcceptable):
        plan_frames("1.2.840.10008.1.2.1", jpeg)
