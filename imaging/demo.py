"""Demo archive content for ``manage.py seed_demo``: a CT study sent by the Dongshan DR, a
12-lead ECG from its ECG cart, and a pathology slide, each for a demo patient with
hypertension. Idempotent: fixed UIDs, and ECG and slide uploads keyed by their content."""

from __future__ import annotations

import io
import tempfile
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from registry.access import principal_for
from registry.models import Patient

from . import services
from .models import Study

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PREFIX = "1.2.826.0.1.3680043.10.1234."


def _uid(*parts: object) -> str:
    return generate_uid(prefix=PREFIX, entropy_srcs=["huizhen-demo", *map(str, parts)])


def _ct_slices(patient: Patient, count: int = 24, size: int = 256) -> list[bytes]:
    """A chest-like phantom: body ellipse, lungs, spine, with a small nodule."""
    study, series = _uid("ct", patient.id_number), _uid("ct-series", patient.id_number)
    y, x = np.mgrid[0:size, 0:size]
    cy, cx = size / 2, size / 2
    out = []
    for n in range(count):
        image = np.full((size, size), -1000, np.int16)  # air
        body = ((x - cx) / (size * 0.42)) ** 2 + ((y - cy) / (size * 0.32)) ** 2 <= 1
        image[body] = 40
        for side in (-1, 1):
            lung = ((x - cx - side * size * 0.18) / (size * 0.13)) ** 2 + (
                (y - cy + size * 0.02) / (size * 0.2)
            ) ** 2 <= 1
            image[lung] = -820
        spine = ((x - cx) / (size * 0.05)) ** 2 + ((y - cy - size * 0.22) / (size * 0.05)) ** 2 <= 1
        image[spine] = 700
        if 10 <= n <= 13:
            nodule = (x - cx - size * 0.2) ** 2 + (y - cy + size * 0.05) ** 2 <= (size * 0.02) ** 2
            image[nodule] = 30
        noise = np.random.default_rng(n).integers(-15, 15, size=(size, size))
        stored = (image + noise + 1024).clip(0, 4095).astype("<u2")
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = _uid("ct-slice", patient.id_number, n)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.preamble = b"\0" * 128
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName = f"{patient.name_pinyin.replace(' ', '^')}={patient.name}"
        ds.PatientID = patient.id_number
        ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
        ds.PatientSex = {"male": "M", "female": "F"}.get(patient.sex, "O")
        ds.StudyDate = ds.SeriesDate = "20261130"
        ds.StudyTime = "093000"
        ds.AccessionNumber = "DEMO-CT-1"
        ds.StudyID = "1"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "胸部平扫 Chest CT"
        ds.SeriesDescription = "Axial 5 mm"
        ds.BodyPartExamined = "CHEST"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(n * 5)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.4, 1.4]
        ds.SliceThickness = 5.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = stored.tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _slide_tiff() -> bytes:
    """A small two-level tiled pyramidal TIFF (JPEG tiles) with a tissue-like pattern."""
    import tifffile

    height, width = 1536, 2048
    y, x = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 242, np.uint8)
    tissue = ((x - width / 2) / (width * 0.4)) ** 2 + ((y - height / 2) / (height * 0.38)) ** 2
    inside = tissue <= 1
    rng = np.random.default_rng(7)
    nuclei = rng.random((height, width)) > 0.985
    image[inside] = (224, 160, 200)  # eosin
    image[inside & nuclei] = (90, 60, 150)  # haematoxylin
    with tempfile.NamedTemporaryFile(suffix=".tif") as handle:
        with tifffile.TiffWriter(handle.name) as tif:
            options = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb"}
            tif.write(
                image, subifds=1, resolution=(40000, 40000), resolutionunit="CENTIMETER", **options
            )
            tif.write(image[::2, ::2], subfiletype=1, **options)
        return open(handle.name, "rb").read()


def seed(organisations: dict[str, Any]) -> None:
    township = organisations["township:dongshan"]
    patients = list(
        Patient.objects.filter(
            home_organisation__parent=township, chronic_conditions__icontains='"I10"'
        ).order_by("pk")[:3]
    )
    if len(patients) < 3:
        return
    ct_patient, ecg_patient, slide_patient = patients
    if not Study.objects.filter(study_instance_uid=_uid("ct", ct_patient.id_number)).exists():
        source = services.Source(organisation=township, calling_ae_title="DEMO_DR")
        for raw in _ct_slices(ct_patient):
            services.store_instance(raw, source=source)
    doctor = get_user_model().objects.filter(username="dongshan.doctor").first()
    if doctor is None:
        return
    principal = principal_for(doctor)
    from .ecg.models import EcgRecord
    from .ecg.services import ecg_upload
    from .ecg.synthetic import synthetic_ecg
    from .ecg.to_dicom import DicomIds, build_ecg_dicom

    ecg_done = EcgRecord.objects.filter(patient=ecg_patient).exists()
    signal, _truth = synthetic_ecg(heart_rate=78, pr=170, qrs=96, qt=390, seed=20261202)
    raw = build_ecg_dicom(
        signal,
        DicomIds(
            study_instance_uid=_uid("ecg", ecg_patient.id_number),
            series_instance_uid=_uid("ecg-series", ecg_patient.id_number),
            sop_instance_uid=_uid("ecg-sop", ecg_patient.id_number),
            study_description="静息十二导联心电图",
        ),
    )
    if not ecg_done:
        ecg_upload(
            principal=principal,
            patient_id=ecg_patient.external_id,
            raw=raw,
            filename="demo-ecg.dcm",
        )
    from .pathology.models import SlideConversion
    from .pathology.services import slide_upload

    if not SlideConversion.objects.filter(patient=slide_patient).exists():
        upload = SimpleUploadedFile("demo-slide.tif", _slide_tiff(), content_type="image/tiff")
        slide_upload(
            principal=principal,
            patient_id=slide_patient.external_id,
            upload=upload,
            specimen_description="胃窦活检 Gastric antrum biopsy",
        )
