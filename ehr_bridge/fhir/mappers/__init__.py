"""Huizhen records as FHIR R4 resources (built with fhir.resources' R4B models, which match R4
for these resources), and a FHIR Patient back to the registry's ``PatientInput``.

Pure functions over already-fetched rows: no queries beyond the relations the selectors
prefetch. The systems and conventions are described in ``systems.py``.
"""

from .bundle import searchset
from .common import Links, human_names, split_chinese_name
from .directory import organization_to_fhir, practitioner_to_fhir
from .imaging import dicom_datetime, imaging_study_to_fhir
from .patient import (
    PATIENT_FIELD_PATHS,
    MappingError,
    patient_input_from_fhir,
    patient_to_fhir,
)

__all__ = [
    "PATIENT_FIELD_PATHS",
    "Links",
    "MappingError",
    "dicom_datetime",
    "human_names",
    "imaging_study_to_fhir",
    "organization_to_fhir",
    "patient_input_from_fhir",
    "patient_to_fhir",
    "practitioner_to_fhir",
    "searchset",
    "split_chinese_name",
]
