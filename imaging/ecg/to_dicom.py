"""DICOM waveforms: building a 12-lead ECG object from an EcgSignal, and reading the
signal back out of any ECG waveform object (12-lead, General ECG).

The 12-Lead ECG IOD (PS3.3 A.34.3) allows 1–13 channels, 200–1000 Hz and at most 16384
samples per channel; a signal outside those limits is written as General ECG (A.34.4).
Samples are stored as 16-bit signed integers with the channel sensitivity set to the
source's quantum (e.g. 5 µV), so the values of the source are kept exactly.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from pydicom.waveforms.numpy_handler import generate_multiplex

from .scp_ecg import LEAD_CODES, LEAD_IDS
from .signal import EcgFormatError, EcgSignal, PatientData, complete_limb_leads, lead_name, ordered

TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
ECG_SOP_CLASSES = frozenset({TWELVE_LEAD_ECG, GENERAL_ECG})

_MEANINGS = {
    "I": "Lead I (Einthoven)", "II": "Lead II", "III": "Lead III", "aVR": "Lead aVR",
    "aVL": "Lead aVL", "aVF": "Lead aVF", "V1": "Lead V1", "V2": "Lead V2", "V3": "Lead V3",
    "V4": "Lead V4", "V5": "Lead V5", "V6": "Lead V6",
}  # fmt: skip
_UNITS_UV = {"uV": 1.0, "mV": 1000.0, "V": 1e6, "nV": 0.001}


@dataclass(frozen=True)
class DicomIds:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    accession_number: str = ""
    institution_name: str = ""
    study_description: str = "ECG"


def _code(value: str, scheme: str, meaning: str, version: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    if version:
        item.CodingSchemeVersion = version
    item.CodeMeaning = meaning
    return item


def _ds_value(value: float) -> str:
    text = f"{value:.8g}"
    return text[:16]


def build_ecg_dataset(signal: EcgSignal, ids: DicomIds) -> Dataset:
    names = ordered(signal)
    if not names:
        raise EcgFormatError("There are no leads to store.")
    data = np.vstack([np.asarray(signal.leads[n], dtype=np.float64) for n in names]).T
    quantum = float(signal.resolution_uv) or 1.0
    peak = float(np.max(np.abs(data))) / quantum if data.size else 0.0
    if peak > 32767:
        quantum *= float(np.ceil(peak / 32767))
    samples = np.round(data / quantum).astype("<i2")
    fs = float(signal.sample_rate)
    twelve = len(names) <= 13 and 200 <= fs <= 1000 and samples.shape[0] <= 16384
    sop_class = TWELVE_LEAD_ECG if twelve else GENERAL_ECG

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ids.sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ids.sop_instance_uid
    ds.StudyInstanceUID = ids.study_instance_uid
    ds.SeriesInstanceUID = ids.series_instance_uid
    patient = signal.patient
    ds.PatientName = patient.name[:64]
    ds.PatientID = patient.patient_id[:64]
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    ds.PatientSex = patient.sex if patient.sex in ("M", "F") else ""
    when = signal.acquired_at or datetime.now()
    ds.StudyDate = ds.ContentDate = ds.SeriesDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = ds.SeriesTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.AccessionNumber = ids.accession_number[:16]
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.StudyDescription = ids.study_description[:64]
    ds.Modality = "ECG"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = ""
    if signal.device:
        ds.ManufacturerModelName = signal.device[:64]
    if ids.institution_name:
        ds.InstitutionName = ids.institution_name[:64]

    item = Dataset()
    item.MultiplexGroupTimeOffset = "0"
    item.TriggerTimeOffset = "0"
    item.WaveformOriginality = "ORIGINAL"
    item.NumberOfWaveformChannels = len(names)
    item.NumberOfWaveformSamples = int(samples.shape[0])
    item.SamplingFrequency = _ds_value(fs)
    item.MultiplexGroupLabel = "RHYTHM"
    channels = []
    for name in names:
        ch = Dataset()
        code = LEAD_IDS.get(name)
        if code is not None:
            meaning = _MEANINGS.get(name, f"Lead {name}")
            ch.ChannelSourceSequence = Sequence(
                [_code(f"5.6.3-9-{code}", "SCPECG", meaning, "1.3")]
            )
        else:
            ch.ChannelLabel = name[:16]
            ch.ChannelSourceSequence = Sequence([_code("5.6.3-9-0", "SCPECG", name[:64], "1.3")])
        ch.ChannelSensitivity = _ds_value(quantum)
        ch.ChannelSensitivityUnitsSequence = Sequence([_code("uV", "UCUM", "microvolt", "1.4")])
        ch.ChannelSensitivityCorrectionFactor = "1"
        ch.ChannelBaseline = "0"
        ch.ChannelTimeSkew = "0"
        ch.WaveformBitsStored = 16
        channels.append(ch)
    item.ChannelDefinitionSequence = Sequence(channels)
    item.WaveformBitsAllocated = 16
    item.WaveformSampleInterpretation = "SS"
    item.WaveformData = samples.tobytes()
    ds.WaveformSequence = Sequence([item])
    return ds


def build_ecg_dicom(signal: EcgSignal, ids: DicomIds) -> bytes:
    """Part 10 bytes of a 12-lead (or General) ECG waveform object."""
    out = io.BytesIO()
    build_ecg_dataset(signal, ids).save_as(out, enforce_file_format=True)
    return out.getvalue()


def _channel_name(ch: Dataset, k: int) -> str:
    label = str(ch.get("ChannelLabel", "") or "")
    source = ch.get("ChannelSourceSequence") or []
    if source:
        code = source[0]
        value = str(code.get("CodeValue", ""))
        match = re.fullmatch(r"5\.6\.3-9-(\d+)", value)
        if match and int(match.group(1)) in LEAD_CODES:
            return LEAD_CODES[int(match.group(1))]
        meaning = re.sub(r"\(.*?\)", "", str(code.get("CodeMeaning", ""))).strip()
        name = lead_name(meaning)
        if name in _MEANINGS:
            return name
    return lead_name(label) if label else f"channel{k + 1}"


def _patient(ds: Dataset) -> PatientData:
    birth = None
    text = str(ds.get("PatientBirthDate", "") or "")
    if len(text) == 8 and text.isdigit():
        try:
            birth = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            birth = None
    return PatientData(
        name=str(ds.get("PatientName", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        birth_date=birth,
        sex=str(ds.get("PatientSex", "") or "")[:1],
    )


def read_ecg_dataset(ds: Dataset) -> EcgSignal:
    """The rhythm waveform of an ECG object: the multiplex group labelled RHYTHM, else the
    longest; values converted to µV through each channel's sensitivity and units."""
    groups = ds.get("WaveformSequence") or []
    if not groups:
        raise EcgFormatError("The DICOM object holds no waveform.")
    index = next(
        (k for k, g in enumerate(groups) if str(g.get("MultiplexGroupLabel", "")) == "RHYTHM"),
        max(range(len(groups)), key=lambda k: int(groups[k].get("NumberOfWaveformSamples", 0))),
    )
    group = groups[index]
    fs = float(group.get("SamplingFrequency", 0) or 0)
    channels = group.get("ChannelDefinitionSequence") or []
    warnings = []
    try:
        if channels:
            data = ds.waveform_array(index).astype(np.float64)
        else:
            raw_groups = list(generate_multiplex(ds, as_raw=True))
            data = raw_groups[index].astype(np.float64)
            warnings.append("no channel definitions: 1 µV per unit assumed")
    except (ValueError, AttributeError, KeyError, TypeError, IndexError) as exc:
        raise EcgFormatError(f"The waveform data cannot be decoded: {exc}.") from exc
    n_channels = data.shape[1]
    if channels:
        names = [_channel_name(ch, k) for k, ch in enumerate(channels)]
    elif n_channels in (12, 8):
        names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        names = names[:12] if n_channels == 12 else ["I", "II", *names[6:]]
        warnings.append("unnamed channels taken in the standard lead order")
    else:
        names = [f"channel{k + 1}" for k in range(n_channels)]
    leads: dict[str, np.ndarray] = {}
    resolution = None
    for k, name in enumerate(names):
        factor = 1.0
        if channels:
            units = channels[k].get("ChannelSensitivityUnitsSequence") or []
            unit = str(units[0].get("CodeValue", "uV")) if units else "uV"
            factor = _UNITS_UV.get(unit, 1.0)
            sens = float(channels[k].get("ChannelSensitivity", 1) or 1)
            corr = float(channels[k].get("ChannelSensitivityCorrectionFactor", 1) or 1)
            quantum = abs(sens * corr * factor)
            resolution = quantum if resolution is None else min(resolution, quantum)
        if name in leads:
            name = f"{name}#{k + 1}"
        leads[name] = data[:, k] * factor
    acquired = None
    stamp = str(ds.get("AcquisitionDateTime", "") or "")[:14]
    if len(stamp) >= 8 and stamp[:8].isdigit():
        try:
            acquired = datetime.strptime(stamp.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
        except ValueError:
            acquired = None
    signal = EcgSignal(
        leads=leads,
        sample_rate=fs,
        resolution_uv=resolution or 1.0,
        patient=_patient(ds),
        acquired_at=acquired,
        device=str(ds.get("ManufacturerModelName", "") or "")[:64],
        warnings=warnings,
    )
    return complete_limb_leads(signal)


def read_ecg_dicom(raw: bytes) -> EcgSignal:
    try:
        ds = dcmread(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad input
        raise EcgFormatError(f"Not a readable DICOM file: {exc}.") from exc
    if str(ds.get("SOPClassUID", "")) not in ECG_SOP_CLASSES and "WaveformSequence" not in ds:
        raise EcgFormatError("The DICOM object is not an ECG waveform.")
    return read_ecg_dataset(ds)
