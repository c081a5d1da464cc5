"""Ingest: strict parsing, idempotency by SOP Instance UID, nothing stored for bad input."""

from __future__ import annotations

import errno
import io
import struct

import pydicom
import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from pydicom.uid import generate_uid

from imaging import services
from imaging.dicom.parse import InvalidDicom
from imaging.models import Instance, Series, Study
from tests.imaging.dicom_factory import make_ct_series


@pytest.fixture
def archive(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    return tmp_path / "archive"


@pytest.fixture
def source(community):
    return services.Source(organisation=community.township, calling_ae_title="TEST_DR")


def files_in(archive):
    return sorted(p for p in archive.rglob("*") if p.is_file()) if archive.exists() else []


def _rewrite(raw: bytes, change) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(raw))
    change(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_an_instance_is_indexed_with_its_attributes(db, archive, source):
    raw = make_ct_series(1, patient_name="Zhang^San", patient_id="MR77")[0]
    result = services.store_instance(raw, source=source)
    assert result.outcome == services.STORED and result.dimse_status == 0
    instance = Instance.objects.select_related("series__study").get()
    assert (instance.rows, instance.columns, instance.bits_allocated) == (64, 64, 16)
    assert instance.size == len(raw)
    assert instance.series.modality == "CT"
    assert instance.series.study.dicom_patient_name == "Zhang^San"
    assert instance.metadata["00100020"]["Value"] == ["MR77"]
    assert "BulkDataURI" in instance.metadata["7FE00010"]
    assert default_storage.open(instance.storage_key).read() == raw


def test_the_same_instance_twice_stores_nothing_new(db, archive, source):
    raw = make_ct_series(1)[0]
    first = services.store_instance(raw, source=source)
    again = services.store_instance(raw, source=source)
    assert (first.outcome, again.outcome) == (services.STORED, services.DUPLICATE)
    assert again.dimse_status == 0
    assert Instance.objects.count() == 1
    assert Study.objects.get().number_of_instances == 1
    assert len(files_in(archive)) == 1


def test_a_different_object_under_a_known_uid_is_refused_or_replaced(db, archive, source, settings):
    raw = make_ct_series(1, patient_name="First^Version")[0]
    changed = _rewrite(raw, lambda ds: setattr(ds, "PatientName", "Second^Version"))
    services.store_instance(raw, source=source)
    refused = services.store_instance(changed, source=source)
    assert refused.outcome == services.CONFLICT
    assert refused.dimse_status == services.STATUS_CONFLICT_WARNING
    stored = Instance.objects.get()
    assert default_storage.open(stored.storage_key).read() == raw
    settings.HUIZHEN_DICOM_ON_CONFLICT = "replace"
    replaced = services.store_instance(changed, source=source)
    assert replaced.outcome == services.REPLACED
    stored.refresh_from_db()
    assert default_storage.open(stored.storage_key).read() == changed
    assert len(files_in(archive)) == 1  # the old file is gone
    assert Study.objects.get().number_of_instances == 1


def _absurd_length(raw: bytes) -> bytes:
    at = raw.index(b"\x10\x00\x10\x00PN")  # Patient Name, explicit VR little endian
    return raw[: at + 6] + struct.pack("<H", 0xFFF0) + raw[at + 8 :]


def _short_pixels(raw: bytes) -> bytes:
    return _rewrite(raw, lambda ds: setattr(ds, "PixelData", ds.PixelData[:100]))


def _no_pixels(raw: bytes) -> bytes:
    return _rewrite(raw, lambda ds: setattr(ds, "PixelData", b""))


def _wrong_vr(raw: bytes) -> bytes:
    # Slice Thickness is DS: a decimal string. "abc" is not one.
    at = raw.index(b"\x18\x00\x50\x00DS")
    (length,) = struct.unpack("<H", raw[at + 6 : at + 8])
    return raw[: at + 8] + b"abc".ljust(length, b" ") + raw[at + 8 + length :]


def _no_uid(raw: bytes) -> bytes:
    return _rewrite(raw, lambda ds: delattr(ds, "SeriesInstanceUID"))


def _path_uid(raw: bytes) -> bytes:
    # Same length, so every element length stays right: only the characters are hostile.
    uid = pydicom.dcmread(io.BytesIO(raw)).SOPInstanceUID.encode()
    hostile = (b"../" * 30)[: len(uid) - 6] + b"passwd"
    return raw.replace(uid, hostile)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[128:], id="missing-preamble"),
        pytest.param(lambda raw: b"%PDF-1.4 not dicom" * 20, id="not-dicom"),
        pytest.param(_absurd_length, id="absurd-length"),
        pytest.param(_short_pixels, id="short-pixel-data"),
        pytest.param(_no_pixels, id="zero-length-pixel-data"),
        pytest.param(_wrong_vr, id="wrong-vr"),
        pytest.param(_no_uid, id="missing-uid"),
        pytest.param(_path_uid, id="path-characters-in-uid"),
    ],
)
def test_bad_objects_are_refused_and_nothing_is_stored(db, archive, source, damage):
    raw = damage(make_ct_series(1)[0])
    with pytest.raises(InvalidDicom) as err:
        services.store_instance(raw, source=source)
    assert err.value.status in (0xC000, 0xA900, 0xA700)
    assert str(err.value)
    assert not Instance.objects.exists() and not Study.objects.exists()
    assert files_in(archive) == []


def test_a_full_disk_answers_out_of_resources_and_leaves_nothing(db, archive, source, monkeypatch):
    raw = make_ct_series(1)[0]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", full)
    with pytest.raises(InvalidDicom) as err:
        services.store_instance(raw, source=source)
    assert err.value.status == 0xA700
    assert not Instance.objects.exists() and not Series.objects.exists()
    assert files_in(archive) == []


def test_an_oversized_decode_is_refused_before_allocation(db, archive, source, settings):
    settings.HUIZHEN_DICOM_MAX_PIXEL_BYTES = 1000
    with pytest.raises(InvalidDicom) as err:
        services.store_instance(make_ct_series(1)[0], source=source)
    assert err.value.status == 0xA700


def test_a_study_is_linked_to_the_registry_patient_by_identifier_or_id_number(
    db, archive, source, community, patient_factory
):
    from registry.models import PatientIdentifier

    by_mrn = patient_factory(home_organisation=community.village_a)
    PatientIdentifier.objects.create(patient=by_mrn, authority="QSX", kind="MR", value="MR42")
    by_id = patient_factory(home_organisation=community.village_b)
    unmatched = make_ct_series(1, patient_id="NOBODY")[0]
    with_mrn = make_ct_series(1, patient_id="MR42")[0]
    with_mrn = _rewrite(with_mrn, lambda ds: setattr(ds, "IssuerOfPatientID", "QSX"))
    with_id = make_ct_series(1, patient_id=by_id.id_number)[0]
    for raw in (unmatched, with_mrn, with_id):
        services.store_instance(raw, source=source)
    patients = {s.dicom_patient_id: s.patient for s in Study.objects.all()}
    assert patients == {"NOBODY": None, "MR42": by_mrn, by_id.id_number: by_id}


def test_orphans_are_found_and_repaired(db, archive, source):
    from datetime import timedelta

    raws = make_ct_series(3)
    for raw in raws:
        services.store_instance(raw, source=source)
    gone = Instance.objects.order_by("pk").first()
    default_storage.delete(gone.storage_key)
    default_storage.save(f"dicom/{generate_uid()}/x/stray.dcm", io.BytesIO(b"partial"))
    orphans = services.find_orphans(min_age=timedelta(0))
    assert orphans.rows_without_files == [gone.pk]
    assert len(orphans.files_without_rows) == 1
    services.repair_orphans(orphans)
    assert services.find_orphans(min_age=timedelta(0)) == services.Orphans([], [])
    assert Study.objects.get().number_of_instances == 2


def test_another_organisation_cannot_add_to_a_study(db, archive, source, community):
    first, second = make_ct_series(2, patient_id="OWN1")
    services.store_instance(first, source=source)
    outsider = services.Source(organisation=community.other_county, calling_ae_title="OTHER")
    with pytest.raises(InvalidDicom):
        services.store_instance(second, source=outsider)
    with pytest.raises(InvalidDicom):  # not even a duplicate is confirmed to an outsider
        services.store_instance(first, source=outsider)
    assert Instance.objects.count() == 1
    assert len(files_in(archive)) == 1
