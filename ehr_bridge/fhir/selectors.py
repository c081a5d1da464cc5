"""Reads of the FHIR facade, each scoped by the gate of the app that owns the data.

- Patient: ``registry.access.patients_visible_to`` / ``access_patient`` (reads and refusals
  audited by the gate; a search writes one ``patient.search`` row naming its parameters).
- ImagingStudy: ``imaging.selectors.studies_visible_to`` and ``imaging.access`` (a refused
  read of an existing study is audited; a view is audited once per session, as DICOMweb;
  a search writes one ``imaging.study.search`` row naming its parameters).
- Practitioner: staff with an active membership in the county trees of the principal's
  organisations. Organization: the directory of active organisations. Neither holds
  patient data, so neither is audited (as in the REST API).

The other apps' types have their own modules beside this one, built on its helpers:
``consult_selectors`` (ServiceRequest, DiagnosticReport), ``appointment_selectors``
(Appointment), ``observation_selectors`` (Observation), ``schedule_selectors`` (Schedule,
Slot).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from django.db.models import Exists, OuterRef, Q, QuerySet, prefetch_related_objects
from django.utils.translation import gettext as _

from imaging.access import access_study, record_study_search, record_study_view
from imaging.models import Series, Study
from imaging.selectors import studies_visible_to
from registry import audit
from registry.access import Principal, access_patient, patients_visible_to
from registry.errors import NotFound
from registry.identity import IdentityError, normalise_mobile
from registry.models import (
    Membership,
    Organisation,
    Patient,
    PatientIdentifier,
    Sex,
    StaffProfile,
)
from registry.selectors import organisation_list

from . import systems
from .search import DateRange, SearchError, SearchQuery, Token

NONE = Q(pk__in=[])


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _any_of(values: tuple[object, ...], build: Callable[[object], Q]) -> Q:
    q = NONE
    for value in values:
        q |= build(value)
    return q


def _ids_q(values: tuple[object, ...], field: str = "external_id") -> Q:
    keys = [key for key in (_uuid(v.code if isinstance(v, Token) else v) for v in values) if key]
    return Q(**{f"{field}__in": keys})


def date_q(field: str, rng: DateRange, convert: Callable[[date], object] = lambda d: d) -> Q:
    """A FHIR date criterion on a single-day value: the day lies in, after or before the
    range the search value names."""
    start, end = convert(rng.start), convert(rng.end)
    within = Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return {
        "eq": within,
        "ne": ~within,
        "gt": Q(**{f"{field}__gte": end}),
        "lt": Q(**{f"{field}__lt": start}),
        "ge": Q(**{f"{field}__gte": start}),
        "le": Q(**{f"{field}__lt": end}),
    }[rng.prefix]


def _string_q(fields: tuple[str, ...], modifier: str, value: str) -> Q:
    lookup = "iexact" if modifier == "exact" else "icontains"
    q = NONE
    for name in fields:
        q |= Q(**{f"{name}__{lookup}": value})
    return q


# --- Patient --------------------------------------------------------------------------------


def _patient_identifier_q(token: Token) -> Q:
    code = (token.code or "").strip()
    if token.system == systems.RESIDENT_ID:
        return Q(id_number=code.upper()) if code else Q(id_number__isnull=False)
    if token.system and token.system.startswith(systems.AUTHORITY_PREFIX):
        idents = PatientIdentifier.objects.filter(
            patient=OuterRef("pk"), authority=token.system.removeprefix(systems.AUTHORITY_PREFIX)
        )
        return Q(Exists(idents.filter(value=code) if code else idents))
    if token.system is None:
        idents = PatientIdentifier.objects.filter(patient=OuterRef("pk"), value=code)
        return Q(id_number=code.upper()) | Q(Exists(idents))
    return NONE


def _phone_q(token: Token) -> Q:
    try:
        return Q(mobile=normalise_mobile(token.code or ""))
    except IdentityError as exc:
        raise SearchError(str(exc), param="phone") from exc


def _gender_q(token: Token) -> Q:
    return Q(sex=token.code) if token.code in Sex.values else NONE


PATIENT_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "identifier": lambda _m, values: _any_of(values, _patient_identifier_q),
    "name": lambda m, values: _any_of(values, lambda v: _string_q(("name", "name_pinyin"), m, v)),
    "birthdate": lambda _m, values: _any_of(values, lambda v: date_q("birth_date", v)),
    "gender": lambda _m, values: _any_of(values, _gender_q),
    "phone": lambda _m, values: _any_of(values, _phone_q),
}


def patient_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Patient]:
    """The patients the principal may see that match every criterion. The audit row names
    the parameters, never their values."""
    patients = patients_visible_to(principal)
    for criterion in query.criteria:
        patients = patients.filter(
            PATIENT_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    audit.record(
        actor=principal.actor,
        action="patient.search",
        object_type="patient",
        detail={"criteria": query.names(), "interface": "fhir"},
    )
    return (
        patients.select_related("home_organisation")
        .prefetch_related("identifiers")
        .order_by("name", "id")
    )


def patient_read(*, principal: Principal, resource_id: str) -> Patient:
    """Through the registry's gate: audited, and NotFound for what the principal may not see."""
    patient = access_patient(principal, resource_id)
    prefetch_related_objects([patient], "identifiers")
    return patient


# --- Practitioner -----------------------------------------------------------------------------


def _county_roots(principal: Principal) -> list[str]:
    """The path of the top of each tree the principal's organisations belong to."""
    return sorted(
        {"/" + m.organisation.path.strip("/").split("/")[0] + "/" for m in principal.memberships}
    )


def practitioners_visible_to(principal: Principal) -> QuerySet[StaffProfile]:
    in_tree = NONE
    for root in _county_roots(principal):
        in_tree |= Q(organisation__path__startswith=root)
    memberships = Membership.objects.filter(
        in_tree, user=OuterRef("user"), is_active=True, organisation__is_active=True
    )
    return StaffProfile.objects.filter(Exists(memberships)).select_related("user")


def _licence_q(token: Token) -> Q:
    if token.system not in (None, systems.PRACTITIONER_LICENCE):
        return NONE
    return Q(licence_number=token.code) if token.code else ~Q(licence_number="")


PRACTITIONER_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "identifier": lambda _m, values: _any_of(values, _licence_q),
    "name": lambda m, values: _any_of(values, lambda v: _string_q(("display_name",), m, v)),
}


def practitioner_search(*, principal: Principal, query: SearchQuery) -> QuerySet[StaffProfile]:
    staff = practitioners_visible_to(principal)
    for criterion in query.criteria:
        staff = staff.filter(
            PRACTITIONER_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    return staff.order_by("display_name", "id")


def practitioner_read(*, principal: Principal, resource_id: str) -> StaffProfile:
    key = _uuid(resource_id)
    staff = practitioners_visible_to(principal).filter(external_id=key).first() if key else None
    if staff is None:
        raise NotFound(_("No such practitioner."))
    return staff


# --- Organization -------------------------------------------------------------------------------


def _org_matches(org: Organisation, name: str, modifier: str, values: tuple[object, ...]) -> bool:
    for value in values:
        if name == "_id" and str(org.external_id) == str(getattr(value, "code", value)):
            return True
        if name == "name":
            text = str(value).casefold()
            got = org.name.casefold()
            if (got == text) if modifier == "exact" else (text in got):
                return True
        if name == "identifier" and isinstance(value, Token):
            pairs = [(systems.DIVISION_CODE, org.division_code)]
            pairs += [(systems.HL7_FACILITY, f.code) for f in org.hl7_facilities.all()]
            pairs += [(systems.DICOM_AE_TITLE, a.ae_title) for a in org.dicom_aes.all()]
            for system, code in pairs:
                if value.system in (None, system) and value.code in (None, code):
                    return True
        if name == "type" and isinstance(value, Token):
            if value.system == systems.ORGANIZATION_TYPE and value.code in (None, "prov"):
                return True
            if value.system in (None, systems.ORGANISATION_KIND) and value.code == org.kind:
                return True
        if name == "partof" and org.parent_id and str(org.parent.external_id) == str(value):
            return True
    return False


def organization_search(*, principal: Principal, query: SearchQuery) -> list[Organisation]:
    """The directory (every active organisation; every staff member may read it)."""
    principal  # noqa: B018 - members only: resolving the principal refused outsiders
    orgs = organisation_list()
    for c in query.criteria:
        orgs = [o for o in orgs if _org_matches(o, c.name, c.modifier, c.values)]
    return orgs


def organization_read(*, principal: Principal, resource_id: str) -> Organisation:
    for org in organisation_list():
        if str(org.external_id) == str(resource_id):
            return org
    raise NotFound(_("No such organisation."))


# --- ImagingStudy --------------------------------------------------------------------------------


def _study_identifier_q(token: Token) -> Q:
    code = (token.code or "").strip()
    if token.system == systems.DICOM_UID:
        return Q(study_instance_uid=code.removeprefix("urn:oid:")) if code else ~NONE
    if token.system is None:
        return Q(study_instance_uid=code.removeprefix("urn:oid:")) | Q(accession_number=code)
    return NONE


def _modality_q(token: Token) -> Q:
    if token.system not in (None, systems.DCM) or not token.code:
        return NONE
    return Q(Exists(Series.objects.filter(study=OuterRef("pk"), modality=token.code.upper())))


def _study_date_q(rng: DateRange) -> Q:
    # StudyDate is stored as DICOM DA text (YYYYMMDD), which sorts as the date does.
    return ~Q(study_date="") & date_q("study_date", rng, lambda d: d.strftime("%Y%m%d"))


def _subject_q(value: object) -> Q:
    key = _uuid(value)
    return Q(patient__external_id=key) if key else NONE


IMAGING_STUDY_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "identifier": lambda _m, values: _any_of(values, _study_identifier_q),
    "patient": lambda _m, values: _any_of(values, _subject_q),
    "subject": lambda _m, values: _any_of(values, _subject_q),
    "modality": lambda _m, values: _any_of(values, _modality_q),
    "started": lambda _m, values: _any_of(values, _study_date_q),
}


def imaging_study_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Study]:
    studies = studies_visible_to(principal)
    for criterion in query.criteria:
        studies = studies.filter(
            IMAGING_STUDY_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    record_study_search(principal, level="study", keys=query.names())
    return (
        studies.select_related("patient").prefetch_related("series").order_by("-received_at", "-pk")
    )


def imaging_study_read(*, principal: Principal, resource_id: str, session_key: str) -> Study:
    """Through the archive's gate (by Study Instance UID, so that a refusal is audited as
    DICOMweb's are); the view is audited once per session."""
    key = _uuid(resource_id)
    uid = (
        Study.objects.filter(external_id=key).values_list("study_instance_uid", flat=True).first()
        if key
        else None
    )
    study = access_study(principal, uid or "")
    record_study_view(principal, study, session_key)
    prefetch_related_objects([study], "series")
    return study
