"""The resource types the facade serves: one table that the URLs, the views and the
CapabilityStatement are all built from.

To add a resource type (Schedule, Slot, Appointment, ServiceRequest, DiagnosticReport,
Observation), write a selector pair in ``selectors.py`` (search and read, scoped and audited
by the owning app's gate), a mapper in ``mappers.py``, and one ``ResourceType`` entry here.
Creation is an explicit ``create`` hook (a function from the validated FHIR resource and the
principal to ``(row, created)``); only types with one accept POST, and only those are listed
with the ``create`` interaction. Appointment creation belongs here once the appointments
app offers a booking service to call: map the FHIR Appointment (slot, participant patient
and practitioner) to that service's input, as ``patient_create`` below does for Patient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import prefetch_related_objects
from fhir.resources.R4B.patient import Patient as FhirPatient

from registry import services
from registry.access import Principal
from registry.errors import ValidationFailed

from . import mappers, selectors, systems
from .http import FhirError
from .search import ParamSpec

ID = ParamSpec("_id", "token", "Logical id of the resource.")


@dataclass(frozen=True)
class ResourceType:
    name: str
    search_params: tuple[ParamSpec, ...]
    search: Callable[..., Any]
    read: Callable[..., Any]
    to_fhir: Callable[[Any, mappers.Links], Any]
    documentation: str
    model: type | None = None  # the fhir.resources model a create body is validated with
    create: Callable[[Principal, Any], tuple[Any, bool]] | None = None
    read_needs_session: bool = False


def _patient_create(principal: Principal, resource: FhirPatient) -> tuple[Any, bool]:
    try:
        data = mappers.patient_input_from_fhir(resource)
    except mappers.MappingError as exc:
        raise FhirError(422, [("invalid", d, e) for d, e in exc.issues]) from None
    try:
        result = services.patient_create(principal=principal, data=data)
    except ValidationFailed as exc:
        issues = [
            ("invalid", message, mappers.PATIENT_FIELD_PATHS.get(name, "Patient"))
            for name, message in exc.fields.items()
        ]
        raise FhirError(422, issues or [("invalid", exc.message, "Patient")]) from None
    # The service answered with a record the principal may see (new, or through the gate).
    prefetch_related_objects([result.patient], "identifiers")
    return result.patient, result.created


PATIENT = ResourceType(
    name="Patient",
    search_params=(
        ID,
        ParamSpec(
            "identifier",
            "token",
            f"Resident ID number ({systems.RESIDENT_ID}|<number>) or an assigning authority's "
            f"identifier ({systems.AUTHORITY_PREFIX}<authority>|<value>); a bare value "
            "matches either.",
        ),
        ParamSpec("name", "string", "Part of the Chinese name or its pinyin (:exact, :contains)."),
        ParamSpec("birthdate", "date", "Birth date (eq, ne, gt, lt, ge, le; YYYY[-MM[-DD]])."),
        ParamSpec("gender", "token", "male | female | unknown."),
        ParamSpec("phone", "token", "Mainland mobile number (+86 prefix optional)."),
    ),
    search=selectors.patient_search,
    read=selectors.patient_read,
    to_fhir=lambda row, _links: mappers.patient_to_fhir(row),
    documentation=(
        "Patients the user may see (home organisation in their organisations' trees, shared "
        "with them, or an emergency grant). A refused read answers 404 and is audited. "
        "Create answers 201 for a new patient and 200 with the existing record when the "
        "resident ID number is already registered."
    ),
    model=FhirPatient,
    create=_patient_create,
)

PRACTITIONER = ResourceType(
    name="Practitioner",
    search_params=(
        ID,
        ParamSpec("name", "string", "Part of the display name (:exact, :contains)."),
        ParamSpec(
            "identifier", "token", f"Practising licence number ({systems.PRACTITIONER_LICENCE})."
        ),
    ),
    search=selectors.practitioner_search,
    read=selectors.practitioner_read,
    to_fhir=lambda row, _links: mappers.practitioner_to_fhir(row),
    documentation="Staff of the organisations in the user's county medical community.",
)

ORGANIZATION = ResourceType(
    name="Organization",
    search_params=(
        ID,
        ParamSpec("name", "string", "Part of the name (:exact, :contains)."),
        ParamSpec(
            "identifier",
            "token",
            f"Division code ({systems.DIVISION_CODE}), HL7 facility ({systems.HL7_FACILITY}) "
            f"or DICOM AE title ({systems.DICOM_AE_TITLE}).",
        ),
        ParamSpec("type", "token", f"Kind of organisation ({systems.ORGANISATION_KIND})."),
        ParamSpec("partof", "reference", "The parent organisation."),
    ),
    search=selectors.organization_search,
    read=selectors.organization_read,
    to_fhir=lambda row, _links: mappers.organization_to_fhir(row),
    documentation="The directory of active organisations.",
)

IMAGING_STUDY = ResourceType(
    name="ImagingStudy",
    search_params=(
        ID,
        ParamSpec("patient", "reference", "The registry patient (Patient/<id>)."),
        ParamSpec("subject", "reference", "The same as patient."),
        ParamSpec(
            "identifier",
            "token",
            f"Study Instance UID ({systems.DICOM_UID}|urn:oid:<uid>) or accession number.",
        ),
        ParamSpec("modality", "token", f"Modality of a series ({systems.DCM})."),
        ParamSpec("started", "date", "Study date (day precision)."),
    ),
    search=selectors.imaging_study_search,
    read=selectors.imaging_study_read,
    to_fhir=mappers.imaging_study_to_fhir,
    documentation=(
        "Studies in the archive the user may see. The contained Endpoint is the DICOMweb "
        "(WADO-RS) base to retrieve them."
    ),
    read_needs_session=True,
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (PATIENT, PRACTITIONER, ORGANIZATION, IMAGING_STUDY)
