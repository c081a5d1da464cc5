"""Index rows as DICOM JSON (PS3.18 F.2): what C-FIND and QIDO-RS return for each level.

Values come from the index; ``include`` adds attributes from a stored instance's metadata
(for QIDO ``includefield`` and C-FIND return keys the index does not hold).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from .models import Instance, Series, Study

UTF8 = "ISO_IR 192"


def _tag(keyword: str) -> str | None:
    tag = tag_for_keyword(keyword)
    return f"{tag:08X}" if tag is not None else None


def _put(out: dict[str, Any], keyword: str, value: Any) -> None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return
    vr = dictionary_VR(tag)
    element: dict[str, Any] = {"vr": vr}
    if value not in (None, "", []):
        values = value if isinstance(value, list) else [value]
        if vr == "PN":
            element["Value"] = [person_name_json(str(v)) for v in values]
        elif vr in ("IS", "SL", "SS", "UL", "US"):
            element["Value"] = [int(v) for v in values]
        else:
            element["Value"] = [str(v) for v in values]
    out[f"{tag:08X}"] = element


def person_name_json(value: str) -> dict[str, str]:
    """A PN value as DICOM JSON (PS3.18 F.2.2): its alphabetic, ideographic and phonetic
    component groups, separated by "=" in the DICOM value."""
    groups = value.split("=")
    out = {}
    for key, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if group:
            out[key] = group
    return out


def _include(out: dict[str, Any], metadata: dict[str, Any], keywords: Iterable[str]) -> None:
    for keyword in keywords:
        tag = _tag(keyword) if not _is_hex_tag(keyword) else keyword.upper()
        if tag and tag not in out and tag in metadata:
            element = metadata[tag]
            if "BulkDataURI" not in element and "InlineBinary" not in element:
                out[tag] = element


def _is_hex_tag(value: str) -> bool:
    return len(value) == 8 and all(c in "0123456789abcdefABCDEF" for c in value)


def study_json(
    study: Study, *, include: Iterable[str] = (), metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "SpecificCharacterSet", UTF8)
    _put(out, "StudyDate", study.study_date)
    _put(out, "StudyTime", study.study_time)
    _put(out, "AccessionNumber", study.accession_number)
    _put(out, "ModalitiesInStudy", list(study.modalities))
    _put(out, "ReferringPhysicianName", study.referring_physician_name)
    _put(out, "StudyDescription", study.study_description)
    _put(out, "PatientName", study.dicom_patient_name)
    _put(out, "PatientID", study.dicom_patient_id)
    _put(out, "IssuerOfPatientID", study.issuer_of_patient_id)
    _put(out, "PatientBirthDate", study.patient_birth_date)
    _put(out, "PatientSex", study.patient_sex)
    _put(out, "StudyInstanceUID", study.study_instance_uid)
    _put(out, "StudyID", study.study_id)
    _put(out, "NumberOfStudyRelatedSeries", study.number_of_series)
    _put(out, "NumberOfStudyRelatedInstances", study.number_of_instances)
    if metadata:
        _include(out, metadata, include)
    return out


def series_json(
    series: Series, *, include: Iterable[str] = (), metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "SpecificCharacterSet", UTF8)
    _put(out, "Modality", series.modality)
    _put(out, "SeriesDescription", series.series_description)
    _put(out, "BodyPartExamined", series.body_part_examined)
    _put(out, "SeriesDate", series.series_date)
    _put(out, "StudyInstanceUID", series.study.study_instance_uid)
    _put(out, "SeriesInstanceUID", series.series_instance_uid)
    _put(out, "SeriesNumber", series.series_number)
    _put(out, "NumberOfSeriesRelatedInstances", series.number_of_instances)
    if metadata:
        _include(out, metadata, include)
    return out


def instance_json(instance: Instance, *, include: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "SpecificCharacterSet", UTF8)
    _put(out, "SOPClassUID", instance.sop_class_uid)
    _put(out, "SOPInstanceUID", instance.sop_instance_uid)
    _put(out, "StudyInstanceUID", instance.series.study.study_instance_uid)
    _put(out, "SeriesInstanceUID", instance.series.series_instance_uid)
    _put(out, "InstanceNumber", instance.instance_number)
    _put(out, "Rows", instance.rows)
    _put(out, "Columns", instance.columns)
    _put(out, "NumberOfFrames", instance.number_of_frames)
    _put(out, "BitsAllocated", instance.bits_allocated)
    _include(out, instance.metadata, include)
    return out
