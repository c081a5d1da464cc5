"""Huizhen records as FHIR R4 resources (built with fhir.resources' R4B models, which match R4
for these resources), and a FHIR Patient back to the registry's ``PatientInput``.

Pure functions over already-fetched rows: no queries beyond the relations the selectors
prefetch. The systems and conventions are described in ``systems.py``.
"""

from .appointment import AppointmentInput, appointment_input_from_fhir, appointment_to_fhir
from .bundle import searchset
from .common import Links, human_names, split_chinese_name
from .consult import diagnostic_report_to_fhir, service_request_to_fhir
from .directory import organization_to_fhir, practitioner_to_fhir
from .imaging import dicom_datetime, imaging_study_to_fhir
from .observation import observation_to_fhir
from .patient import (
    PATIENT_FIELD_PATHS,
    MappingError,
    patient_input_from_fhir,
    patient_to_fhir,
)
from .schedule import schedule_to_fhir, slot_to_fhir

__all__ = [
    "AppointmentInput",
    "appointment_input_from_fhir",
    "appointment_to_fhir",
    "PATIENT_FIELD_PATHS",
    "Links",
    "MappingError",
    "diagnostic_report_to_fhir",
    "dicom_datetime",
    "human_names",
    "imaging_study_to_fhir",
    "observation_to_fhir",
    "organization_to_fhir",
    "patient_input_from_fhir",
    "patient_to_fhir",
    "practitioner_to_fhir",
    "schedule_to_fhir",
    "searchset",
    "service_request_to_fhir",
    "slot_to_fhir",
    "split_chinese_name",
]
