"""Synthetic, deterministic DICOM objects for the imaging tests.

Every UID comes from ``pydicom.uid.generate_uid`` with a fixed prefix and named entropy
sources, and every pixel from a seeded generator, so the same call gives the same bytes.
"""

from __future__ import annotations

import io
from datetime import date

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PREFIX = "1.2.826.0.1.3680043.8.498."
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
ECG_12_LEAD_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.1"
SEED = 20240601


def uid(*parts: object) -> str:
    """A UID that depends only on ``parts``."""
    return generate_uid(prefix=PREFIX, entropy_srcs=["huizhen-test", *map(str, parts)])


def _base(
    *,
    sop_class: str,
    sop_uid: str,
    study_uid: str,
    series_uid: str,
    patient_name: str,
    patient_id: str,
    charset: str | None,
    modality: str,
    study_date: str,
    accession: str,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PREFIX + "1"
    ds.preamble = b"\0" * 128
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19560314"
    ds.PatientSex = "F"
    ds.StudyDate = study_date
    ds.StudyTime = "093000"
    ds.SeriesDate = study_date
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic study"
    ds.Modality = modality
    ds.Manufacturer = "Huizhen test"
    return ds


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_ct_series(
    n: int,
    rows: int = 64,
    cols: int = 64,
    patient_name: str = "Zhang^San",
    patient_id: str = "P0001",
    study_uid: str | None = None,
    charset: str | None = None,
    *,
    series_uid: str | None = None,
    study_date: str = "20240601",
    accession: str = "A0001",
    series_number: int = 1,
    seed: int = SEED,
) -> list[bytes]:
    """``n`` CT slices (16-bit, Rescale Intercept -1024, a soft-tissue window) as Part 10."""
    study_uid = study_uid or uid("study", patient_id, seed)
    series_uid = series_uid or uid("series", study_uid, series_number, seed)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sop_uid = uid("ct", series_uid, i)
        ds = _base(
            sop_class=CT_IMAGE_STORAGE,
            sop_uid=sop_uid,
            study_uid=study_uid,
            series_uid=series_uid,
            patient_name=patient_name,
            patient_id=patient_id,
            charset=charset,
            modality="CT",
            study_date=study_date,
            accession=accession,
        )
        ds.SeriesNumber = series_number
        ds.SeriesDescription = "Axial"
        ds.BodyPartExamined = "CHEST"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i * 5)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 5.0
        ds.FrameOfReferenceUID = uid("for", study_uid)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        # A gradient (so min and max differ) with seeded noise.
        gradient = np.linspace(0, 2000, rows * cols, dtype=np.float64).reshape(rows, cols)
        noise = rng.integers(0, 200, size=(rows, cols))
        ds.PixelData = (gradient + noise).astype("<u2").tobytes()
        out.append(_encode(ds))
    return out


def make_dx(
    *,
    patient_name: str = "Li^Si",
    patient_id: str = "P0002",
    study_uid: str | None = None,
    rows: int = 96,
    cols: int = 80,
    seed: int = SEED,
) -> bytes:
    """One MONOCHROME1 radiograph (the display is inverted)."""
    study_uid = study_uid or uid("dx-study", patient_id, seed)
    series_uid = uid("dx-series", study_uid)
    ds = _base(
        sop_class=DX_IMAGE_STORAGE,
        sop_uid=uid("dx", series_uid),
        study_uid=study_uid,
        series_uid=series_uid,
        patient_name=patient_name,
        patient_id=patient_id,
        charset=None,
        modality="DX",
        study_date="20240602",
        accession="A0002",
    )
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 14
    ds.HighBit = 13
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 1 << 14, size=(rows, cols)).astype("<u2").tobytes()
    return _encode(ds)


def make_ecg(
    *,
    patient_name: str = "Wang^Wu",
    patient_id: str = "P0003",
    study_uid: str | None = None,
    seed: int = SEED,
) -> bytes:
    """A 12-lead ECG-like waveform: 12 channels, 10 s at 500 Hz, 16-bit; no pixel data."""
    study_uid = study_uid or uid("ecg-study", patient_id, seed)
    series_uid = uid("ecg-series", study_uid)
    ds = _base(
        sop_class=ECG_12_LEAD_STORAGE,
        sop_uid=uid("ecg", series_uid),
        study_uid=study_uid,
        series_uid=series_uid,
        patient_name=patient_name,
        patient_id=patient_id,
        charset=None,
        modality="ECG",
        study_date=date(2024, 6, 3).strftime("%Y%m%d"),
        accession="A0003",
    )
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    samples, channels = 5000, 12
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 500.0
    signal = (np.sin(2 * np.pi * 1.2 * t)[:, None] * 500).astype(np.int16)
    data = signal + rng.integers(-20, 20, size=(samples, channels)).astype(np.int16)
    item = Dataset()
    item.WaveformOriginality = "ORIGINAL"
    item.NumberOfWaveformChannels = channels
    item.NumberOfWaveformSamples = samples
    item.SamplingFrequency = 500
    item.WaveformBitsAllocated = 16
    item.WaveformSampleInterpretation = "SS"
    item.WaveformData = data.astype("<i2").tobytes()
    ds.WaveformSequence = Sequence([item])
    return _encode(ds)


def with_changes(raw: bytes, **changes: object) -> bytes:
    """The object re-encoded with some attributes set (``None`` deletes one)."""
    from pydicom import config, dcmread

    # Invalid values (a UID with path characters) are the point of some tests.
    with config.disable_value_validation():
        ds = dcmread(io.BytesIO(raw))
        for keyword, value in changes.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        if "SOPInstanceUID" in changes and changes["SOPInstanceUID"] is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = changes["SOPInstanceUID"]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()
