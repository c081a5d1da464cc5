"""Fixtures for tests against Debian's Orthanc as a real DICOM and DICOMweb peer.

One Orthanc runs for the whole session with its own configuration, storage and ports (never
the system service); each test starts with it empty. Huizhen's DIMSE server runs in-process
on a port chosen once per session, which Orthanc knows as the modality ``huizhen``.
"""

from __future__ import annotations

import pytest
from django.db import connection

from imaging.dicom import scp
from registry.models import DicomApplicationEntity

from . import orthanc as orthanc_peer

HUIZHEN_AET = "HUIZHEN"
SENDER_AET = "TEST_DR"


@pytest.fixture(scope="session")
def huizhen_dicom_port() -> int:
    return orthanc_peer.free_port()


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory, huizhen_dicom_port):
    if orthanc_peer.binary() is None or orthanc_peer.dicomweb_plugin() is None:
        orthanc_peer.install()
    if orthanc_peer.binary() is None or orthanc_peer.dicomweb_plugin() is None:
        pytest.skip(
            "Debian's orthanc and orthanc-dicomweb are not installed and could not be "
            "installed here: apt-get install orthanc orthanc-dicomweb"
        )
    server = orthanc_peer.start(
        tmp_path_factory.mktemp("orthanc"),
        modalities={"huizhen": (HUIZHEN_AET, "127.0.0.1", huizhen_dicom_port)},
    )
    yield server
    server.stop()


@pytest.fixture
def orthanc(orthanc_server):
    """The session's Orthanc, emptied."""
    orthanc_server.delete_everything()
    yield orthanc_server
    orthanc_server.delete_everything()


@pytest.fixture
def archive(settings, tmp_path):
    location = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    return location


@pytest.fixture
def huizhen_scp(community, archive, orthanc, huizhen_dicom_port):
    """Huizhen's DIMSE server; the township centre owns a modality (TEST_DR) and the Orthanc
    peer's AE title (a C-MOVE destination and a C-STORE sender)."""
    DicomApplicationEntity.objects.create(
        organisation=community.township, ae_title=SENDER_AET, host="127.0.0.1"
    )
    DicomApplicationEntity.objects.create(
        organisation=community.township,
        ae_title=orthanc.ae_title,
        host="127.0.0.1",
        port=orthanc.dicom_port,
    )
    running = scp.start("127.0.0.1", huizhen_dicom_port, block=False)
    yield huizhen_dicom_port
    running.shutdown()
    # Association threads may still hold their database sessions; end them.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
