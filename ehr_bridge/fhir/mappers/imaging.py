"""ImagingStudy: an archived study with its series and the DICOMweb endpoint."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from fhir.resources.R4B.imagingstudy import ImagingStudy

from imaging.models import Study

from .. import systems
from .common import Links, last_updated


def dicom_datetime(da: str, tm: str) -> str | None:
    """A DICOM DA (and TM) as a FHIR dateTime in the server's time zone (DICOM times carry
    none); a date alone stays a date."""
    if not re.fullmatch(r"\d{8}", da or ""):
        return None
    try:
        day = datetime.strptime(da, "%Y%m%d")
    except ValueError:
        return None
    digits = (tm or "").split(".")[0]
    if not re.fullmatch(r"\d{2}(\d{2}(\d{2})?)?", digits):
        return day.date().isoformat()
    hour, minute, second = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hour > 23 or minute > 59 or second > 60:
        return day.date().isoformat()
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    moment = day.replace(hour=hour, minute=minute, second=min(second, 59), tzinfo=zone)
    return moment.isoformat()


def _modality(code: str) -> dict[str, str]:
    return {"system": systems.DCM, "code": code}


def imaging_study_to_fhir(study: Study, links: Links) -> ImagingStudy:
    """Needs ``patient`` selected and ``series`` prefetched. The DICOMweb base is a contained
    Endpoint; instances are not listed (retrieve them from the endpoint)."""
    if study.patient_id:
        subject: dict[str, Any] = {"reference": f"Patient/{study.patient.external_id}"}
    else:
        # Not yet matched to a registry patient: a logical reference to the DICOM Patient ID.
        subject = {"type": "Patient"}
        if study.dicom_patient_id:
            subject["identifier"] = {"value": study.dicom_patient_id}
            if study.issuer_of_patient_id:
                subject["identifier"]["system"] = systems.authority_system(
                    study.issuer_of_patient_id
                )
        subject["display"] = study.dicom_patient_name or _("Unmatched patient")
    identifiers: list[dict[str, Any]] = [
        {
            "use": "official",
            "system": systems.DICOM_UID,
            "value": systems.dicom_uid(study.study_instance_uid),
        }
    ]
    if study.accession_number:
        identifiers.append(
            {
                "type": {"coding": [{"system": systems.V2_IDENTIFIER_TYPE, "code": "ACSN"}]},
                "value": study.accession_number,
            }
        )
    series_rows = sorted(
        study.series.all(), key=lambda s: (s.series_number is None, s.series_number or 0, s.pk)
    )
    series = []
    for row in series_rows:
        entry: dict[str, Any] = {
            "uid": row.series_instance_uid,
            "modality": _modality(row.modality or "OT"),
            "numberOfInstances": row.number_of_instances,
        }
        if row.series_number is not None and row.series_number >= 0:
            entry["number"] = row.series_number
        if row.series_description:
            entry["description"] = row.series_description
        started = dicom_datetime(row.series_date, row.series_time)
        if started:
            entry["started"] = started
        series.append(entry)
    modalities = sorted(
        set(study.modalities or []) | {s.modality for s in series_rows if s.modality}
    )
    body: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": str(study.external_id),
        **last_updated(study.updated_at),
        "contained": [
            {
                "resourceType": "Endpoint",
                "id": "dicomweb",
                "status": "active",
                "connectionType": {
                    "system": systems.ENDPOINT_CONNECTION_TYPE,
                    "code": "dicom-wado-rs",
                },
                "payloadType": [{"text": "DICOM"}],
                "payloadMimeType": ["application/dicom"],
                "address": links.dicomweb_base,
            }
        ],
        "identifier": identifiers,
        "status": "available",
        "subject": subject,
        "endpoint": [{"reference": "#dicomweb"}],
        "numberOfSeries": study.number_of_series,
        "numberOfInstances": study.number_of_instances,
    }
    if modalities:
        body["modality"] = [_modality(m) for m in modalities]
    started = dicom_datetime(study.study_date, study.study_time)
    if started:
        body["started"] = started
    if study.study_description:
        body["description"] = study.study_description
    if series:
        body["series"] = series
    return ImagingStudy.model_validate(body)
