"""The resource types the facade serves: one table that the URLs, the views and the
CapabilityStatement are all built from.

To add a resource type, write a selector pair (search and read, scoped and audited by the
owning app's gate): in ``selectors.py`` for the registry's and the archive's types, in
``<app>_selectors.py`` for another app's (``consult_selectors``, ``appointment_selectors``,
``observation_selectors``, ``schedule_selectors``); a pure mapper in ``mappers/``; and one
``ResourceType`` entry here. Creation is an explicit ``create`` hook (a function from the
validated FHIR resource and the principal to ``(row, created)``) that maps the FHIR resource
to one service's input; only types with one accept POST, and only those are listed with the
``create`` interaction (Patient through ``patient_create``, Appointment through
``booking_create_for_patient``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import prefetch_related_objects
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.patient import Patient as FhirPatient

from appointments import services as appointment_services
from appointments.models import Booking
from registry import services
from registry.access import Principal
from registry.errors import ValidationFailed

from . import (
    appointment_selectors,
    consult_selectors,
    mappers,
    observation_selectors,
    schedule_selectors,
    selectors,
    systems,
)
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

PATIENT_REFERENCE = ParamSpec("patient", "reference", "The registry patient (Patient/<id>).")
SUBJECT_REFERENCE = ParamSpec("subject", "reference", "The same as patient.")

SERVICE_REQUEST = ResourceType(
    name="ServiceRequest",
    search_params=(
        ID,
        PATIENT_REFERENCE,
        SUBJECT_REFERENCE,
        ParamSpec(
            "status",
            "token",
            "draft | active | on-hold | completed | revoked (from the consult's state).",
        ),
        ParamSpec("category", "token", f"Kind of consult ({systems.CONSULT_TYPE})."),
        ParamSpec("code", "token", f"The same as category ({systems.CONSULT_TYPE})."),
        ParamSpec("authored", "date", "Day the consult request was created."),
    ),
    search=consult_selectors.service_request_search,
    read=consult_selectors.service_request_read,
    to_fhir=lambda row, _links: mappers.service_request_to_fhir(row),
    documentation=(
        "Teleconsult requests the user may see (the requesting organisation's tree, the "
        "routed centre's tree, or the assignee), as in the REST API. Reads and searches are "
        "audited; a consult not visible answers 404."
    ),
)

DIAGNOSTIC_REPORT = ResourceType(
    name="DiagnosticReport",
    search_params=(
        ID,
        PATIENT_REFERENCE,
        SUBJECT_REFERENCE,
        ParamSpec("based-on", "reference", "The consult request (ServiceRequest/<id>)."),
        ParamSpec("issued", "date", "Day the report version was signed."),
    ),
    search=consult_selectors.diagnostic_report_search,
    read=consult_selectors.diagnostic_report_read,
    to_fhir=mappers.diagnostic_report_to_fhir,
    documentation=(
        "Signed consult report versions of the consults the user may see (drafts are not "
        "served). conclusionCode holds the ICD-10 codes; presentedForm links the signed PDF. "
        "Reads and searches are audited."
    ),
)


def _appointment_create(principal: Principal, resource: FhirAppointment) -> tuple[Any, bool]:
    """Books through ``booking_create_for_patient`` (the patient's gate, the role check and
    the slot's capacity); a full slot or a second booking of the day answers 409."""
    try:
        data = mappers.appointment_input_from_fhir(resource)
    except mappers.MappingError as exc:
        raise FhirError(422, [("invalid", d, e) for d, e in exc.issues]) from None
    try:
        booking = appointment_services.booking_create_for_patient(
            principal=principal, patient_id=data.patient_id, slot_id=data.slot_id, note=data.note
        )
    except ValidationFailed as exc:
        issues = [("invalid", f"{name}: {msg}", "Appointment") for name, msg in exc.fields.items()]
        raise FhirError(422, issues or [("invalid", exc.message, "Appointment")]) from None
    return (
        Booking.objects.select_related(
            "patient", "slot__schedule__clinician__staff", "organisation"
        ).get(pk=booking.pk),
        True,
    )


APPOINTMENT = ResourceType(
    name="Appointment",
    search_params=(
        ID,
        PATIENT_REFERENCE,
        ParamSpec("actor", "reference", "The patient participant (Patient/<id>)."),
        ParamSpec("date", "date", "Day of the appointment (local date)."),
        ParamSpec(
            "status",
            "token",
            "pending | booked | checked-in | fulfilled | cancelled | noshow.",
        ),
        ParamSpec("slot", "reference", "The booked slot (Slot/<id>)."),
    ),
    search=appointment_selectors.appointment_search,
    read=appointment_selectors.appointment_read,
    to_fhir=lambda row, _links: mappers.appointment_to_fhir(row),
    documentation=(
        "Bookings of the patients the user may see and at the user's organisations, as in "
        "the REST API; reads and searches are audited. Create books the Slot named in "
        "slot[0] for the Patient participant: 201 with the booking; 409 when the slot is "
        "full or the patient already has a booking of that kind on that day."
    ),
    model=FhirAppointment,
    create=_appointment_create,
)

OBSERVATION = ResourceType(
    name="Observation",
    search_params=(
        ID,
        PATIENT_REFERENCE,
        SUBJECT_REFERENCE,
        ParamSpec(
            "code",
            "token",
            f"LOINC ({systems.LOINC}): {systems.LOINC_BP_PANEL} blood pressure panel (also "
            f"{systems.LOINC_SYSTOLIC}, {systems.LOINC_DIASTOLIC}), {systems.LOINC_GLUCOSE} "
            f"glucose, {systems.LOINC_GLUCOSE_FASTING} fasting glucose.",
        ),
        ParamSpec("category", "token", "vital-signs (blood pressure) | laboratory (glucose)."),
        ParamSpec("date", "date", "Day the reading was taken."),
    ),
    search=observation_selectors.observation_search,
    read=observation_selectors.observation_read,
    to_fhir=lambda row, _links: mappers.observation_to_fhir(row),
    documentation=(
        "Blood pressure and blood glucose readings (taken at home or at a visit) of the "
        "patients the user may see; a clinical role is needed, as in the REST API. Reads and "
        "searches are audited."
    ),
)

SCHEDULE = ResourceType(
    name="Schedule",
    search_params=(
        ID,
        ParamSpec(
            "actor",
            "reference",
            "The organisation (Organization/<id>, the contained clinic's managing "
            "organisation) or the clinician (Practitioner/<id>).",
        ),
        ParamSpec("active", "token", "true | false."),
    ),
    search=schedule_selectors.schedule_search,
    read=schedule_selectors.schedule_read,
    to_fhir=lambda row, _links: mappers.schedule_to_fhir(row),
    documentation=(
        "Bookable schedules of the organisations in the user's county medical community "
        "(no patient data: not audited, as the REST API's slot list)."
    ),
)

SLOT = ResourceType(
    name="Slot",
    search_params=(
        ID,
        ParamSpec("schedule", "reference", "The schedule (Schedule/<id>)."),
        ParamSpec(
            "actor",
            "reference",
            "The schedule's organisation (Organization/<id>) or clinician (Practitioner/<id>).",
        ),
        ParamSpec("start", "date", "Day the slot starts (local date)."),
        ParamSpec("status", "token", "free | busy | busy-unavailable."),
        ParamSpec("service-type", "token", f"Visit type ({systems.VISIT_TYPE})."),
    ),
    search=schedule_selectors.slot_search,
    read=schedule_selectors.slot_read,
    to_fhir=lambda row, _links: mappers.slot_to_fhir(row),
    documentation=(
        "Slots of those schedules. free: places left; busy: full; busy-unavailable: "
        "withdrawn. Book one with Appointment create."
    ),
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    PATIENT,
    PRACTITIONER,
    ORGANIZATION,
    IMAGING_STUDY,
    SERVICE_REQUEST,
    DIAGNOSTIC_REPORT,
    APPOINTMENT,
    OBSERVATION,
    SCHEDULE,
    SLOT,
)
