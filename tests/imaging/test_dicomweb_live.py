"""DICOMweb over a real socket with the dicomweb-client library (a real peer): STOW, QIDO at
three levels, WADO instance/metadata/bulk data/frames/rendered, bearer tokens, and an
outsider who finds nothing."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.db import connections
from knox.models import AuthToken
from PIL import Image

from imaging.models import Instance
from registry.models import AuditEvent
from tests.imaging.dicom_factory import make_ct_series

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }


@pytest.fixture
def dicomweb(live_server, monkeypatch):
    """DICOMweb clients with a bearer token each. The server threads close their database
    connection after each request (as without persistent connections), so that a client's
    idle keep-alive connection holds none past the test."""
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    clients = []

    def make(user) -> DICOMwebClient:
        _, token = AuthToken.objects.create(user)
        client = DICOMwebClient(
            url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {token}"}
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client._session.close()


def test_dicomweb_client_stores_finds_and_retrieves(live_server, community, dicomweb):
    # Given a village clinic's CT series with a GB18030 patient name
    objects = make_ct_series(4, patient_name="王^小明", patient_id="LIVE1", charset="GB18030")
    datasets = [pydicom.dcmread(io.BytesIO(raw)) for raw in objects]
    study, series = datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID
    sops = [ds.SOPInstanceUID for ds in datasets]
    clinic = dicomweb(community.users["village_a"])

    # When it is stored with STOW-RS
    result = clinic.store_instances(datasets)

    # Then every instance is referenced with a retrieve URL and none failed
    assert [item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence] == sops
    urls = [item.RetrieveURL for item in result.ReferencedSOPSequence]
    assert all(url.endswith(f"/instances/{sop}") for url, sop in zip(urls, sops, strict=True))
    assert "FailedSOPSequence" not in result
    assert Instance.objects.count() == 4

    # QIDO at three levels, with a wildcard on the GB18030 name and includefield
    reader = dicomweb(community.users["county_doctor"])
    found = reader.search_for_studies(
        search_filters={"PatientName": "王*"}, fields=["StudyDescription", "00080070"]
    )
    assert len(found) == 1
    assert found[0]["00100010"]["Value"] == [{"Alphabetic": "王^小明"}]
    assert found[0]["00080070"]["Value"] == ["Huizhen test"]
    found_series = reader.search_for_series(study, fields=["all"])
    assert [s["0020000E"]["Value"][0] for s in found_series] == [series]
    found_instances = reader.search_for_instances(study, series, fields=["ImagePositionPatient"])
    assert [i["00080018"]["Value"][0] for i in found_instances] == sops
    assert reader.search_for_studies(search_filters={"PatientID": "nobody"}) == []

    # WADO-RS: the instance comes back byte for byte, via the library's multipart decoder
    url = f"{live_server.url}/dicomweb/studies/{study}/series/{series}/instances/{sops[1]}"
    response = reader._session.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"'}
    )
    assert response.status_code == 200
    assert list(reader._decode_multipart_message(response, stream=False)) == [objects[1]]
    instance = reader.retrieve_instance(study, series, sops[1])
    assert instance.PatientName == "王^小明"
    assert len(list(reader.iter_series(study, series))) == 4

    # Metadata with bulk data URLs the client can follow
    metadata = reader.retrieve_series_metadata(study, series)
    assert len(metadata) == 4
    # (the library sends "Host" without the port, so URLs the server builds lack it here)
    bulk_url = urlsplit(metadata[0]["7FE00010"]["BulkDataURI"])
    assert bulk_url.scheme == "http" and bulk_url.path.endswith("/bulkdata/7FE00010")
    [pixels] = reader.retrieve_bulkdata(live_server.url + bulk_url.path)
    assert pixels == datasets[0].PixelData

    # Frames with transfer-syntax=* (what OHIF asks), rendered images and a thumbnail
    [frame] = reader.retrieve_instance_frames(
        study, series, sops[2], [1], media_types=(("application/octet-stream", "*"),)
    )
    assert frame == datasets[2].PixelData
    png = reader.retrieve_instance_rendered(
        study, series, sops[0], media_types=("image/png",), params={"viewport": "96,96"}
    )
    assert Image.open(io.BytesIO(png)).size == (96, 96)
    thumbnail = reader._session.get(f"{live_server.url}/dicomweb/studies/{study}/thumbnail")
    assert thumbnail.status_code == 200
    assert Image.open(io.BytesIO(thumbnail.content)).format == "JPEG"

    # One audit entry for the reader's session, however many requests it made
    views = AuditEvent.objects.filter(action="imaging.study.view", actor_username="county_doctor")
    assert views.count() == 1

    # A doctor of another county finds nothing and gets 404
    outsider = dicomweb(community.users["other_doctor"])
    assert outsider.search_for_studies() == []
    assert outsider.search_for_instances(study, series) == []
    with pytest.raises(requests.HTTPError) as refused:
        outsider.retrieve_instance(study, series, sops[0])
    assert refused.value.response.status_code == 404
    with pytest.raises(requests.HTTPError):
        outsider.retrieve_series_metadata(study, series)

    # And nothing without a token
    anonymous = requests.get(f"{live_server.url}/dicomweb/studies", timeout=10)
    assert anonymous.status_code == 401
