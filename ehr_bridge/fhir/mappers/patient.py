"""Patient: a registry patient as a FHIR Patient, and a FHIR Patient as ``PatientInput``."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from django.utils.translation import gettext as _
from fhir.resources.R4B.patient import Patient as FhirPatient

from registry.models import IdentifierKind, Patient
from registry.services import IdentifierInput, PatientInput

from .. import systems
from .common import HAS_HAN, extension_code, human_names, last_updated


def _kind_type(kind: str) -> dict[str, Any]:
    codings = [
        {
            "system": systems.IDENTIFIER_KIND,
            "code": kind,
            "display": str(IdentifierKind(kind).label) if kind in IdentifierKind.values else kind,
        }
    ]
    if kind in systems.V2_TYPE_OF_KIND:
        codings.append(
            {"system": systems.V2_IDENTIFIER_TYPE, "code": systems.V2_TYPE_OF_KIND[kind]}
        )
    return {"coding": codings}


def patient_to_fhir(patient: Patient) -> FhirPatient:
    """Needs ``home_organisation`` selected and ``identifiers`` prefetched."""
    identifiers: list[dict[str, Any]] = []
    if patient.id_number:
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": systems.V2_IDENTIFIER_TYPE, "code": "NI"}]},
                "system": systems.RESIDENT_ID,
                "value": patient.id_number,
            }
        )
    for ident in patient.identifiers.all():
        identifiers.append(
            {
                "use": "usual",
                "type": _kind_type(ident.kind),
                "system": systems.authority_system(ident.authority),
                "value": ident.value,
                "assigner": {"display": ident.authority},
            }
        )
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.external_id),
        **last_updated(patient.updated_at),
        "active": True,
        "name": human_names(patient.name, patient.name_pinyin),
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
        "managingOrganization": {
            "reference": f"Organization/{patient.home_organisation.external_id}",
            "display": patient.home_organisation.name,
        },
    }
    if identifiers:
        body["identifier"] = identifiers
    if patient.mobile:
        body["telecom"] = [{"system": "phone", "value": patient.mobile, "use": "mobile"}]
    if patient.address or patient.address_division_code:
        address: dict[str, Any] = {"use": "home", "country": "CN"}
        if patient.address:
            address["text"] = patient.address
        if patient.address_division_code:
            address["extension"] = [
                {"url": systems.DIVISION_CODE_EXTENSION, "valueCode": patient.address_division_code}
            ]
        body["address"] = [address]
    return FhirPatient.model_validate(body)


class MappingError(ValueError):
    """A valid FHIR Patient that Huizhen cannot take as it is; ``issues`` are
    (diagnostics, expression) pairs."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(d for d, _e in issues))
        self.issues = issues


def _name_string(name: Any, *, han: bool) -> str:
    if name.text:
        return name.text.strip()
    given = name.given or []
    if han:
        return f"{name.family or ''}{''.join(given)}".strip()
    return " ".join(p for p in [name.family or "", " ".join(given)] if p).strip()


def _pick_names(names: list[Any]) -> tuple[str, str]:
    """(Chinese name, pinyin). The ideographic name, else the first name in Han characters,
    else the first name; the alphabetic name, else another name with no Han characters."""
    chinese = pinyin = ""
    for name in names:
        rep = extension_code(name, systems.EN_REPRESENTATION)
        han = rep == "IDE" or (rep is None and bool(HAS_HAN.search(_name_string(name, han=True))))
        if han and not chinese:
            chinese = _name_string(name, han=True)
        elif not han and not pinyin:
            pinyin = _name_string(name, han=False)
    if not chinese and pinyin:
        chinese, pinyin = pinyin, ""
    return chinese, pinyin


def _identifier_kind(ident: Any) -> str:
    for coding in (ident.type.coding or []) if ident.type else []:
        if coding.system == systems.IDENTIFIER_KIND and coding.code in IdentifierKind.values:
            return coding.code
    for coding in (ident.type.coding or []) if ident.type else []:
        if coding.system == systems.V2_IDENTIFIER_TYPE and coding.code in systems.KIND_OF_V2_TYPE:
            return systems.KIND_OF_V2_TYPE[coding.code]
    # An assigning authority's identifier without a type is read as its record number, as
    # HIS systems send PID-3 without a type code.
    return IdentifierKind.MEDICAL_RECORD


def _reference_id(reference: str | None, resource_type: str) -> uuid.UUID | None:
    if not reference:
        return None
    kind, _sep, key = reference.rstrip("/").rpartition("/")
    if not kind.endswith(resource_type):
        return None
    try:
        return uuid.UUID(key)
    except ValueError:
        return None


def patient_input_from_fhir(resource: FhirPatient) -> PatientInput:
    """What ``registry.services.patient_create`` needs. Raises MappingError naming every
    element Huizhen cannot take. Elements with no place in the registry (contact,
    communication, photo, ...) are ignored."""
    issues: list[tuple[str, str]] = []
    chinese, pinyin = _pick_names(resource.name or [])
    if not chinese:
        issues.append((_("A patient needs a name."), "Patient.name"))
    sex = resource.gender
    if sex == "other":
        issues.append((_("Gender must be male, female or unknown."), "Patient.gender"))
    birth_date: date | None = None
    if isinstance(resource.birthDate, date):
        birth_date = resource.birthDate
    elif resource.birthDate:
        issues.append((_("Give the full birth date (YYYY-MM-DD)."), "Patient.birthDate"))
    id_number: str | None = None
    identifiers: list[IdentifierInput] = []
    for index, ident in enumerate(resource.identifier or []):
        where = f"Patient.identifier[{index}]"
        if not ident.value:
            issues.append((_("An identifier needs a value."), f"{where}.value"))
        elif ident.system == systems.RESIDENT_ID:
            if id_number and id_number != ident.value:
                issues.append((_("Give one resident ID number."), where))
            id_number = ident.value
        elif ident.system and ident.system.startswith(systems.AUTHORITY_PREFIX):
            authority = ident.system.removeprefix(systems.AUTHORITY_PREFIX)
            identifiers.append(IdentifierInput(authority, _identifier_kind(ident), ident.value))
        else:
            issues.append(
                (
                    _("Unknown identifier system; use %(rid)s or %(prefix)s<authority>.")
                    % {"rid": systems.RESIDENT_ID, "prefix": systems.AUTHORITY_PREFIX},
                    f"{where}.system",
                )
            )
    phones = [t for t in resource.telecom or [] if t.system in ("phone", "sms") and t.value]
    phones.sort(key=lambda t: t.use != "mobile")
    address_text = division = ""
    addresses = sorted(resource.address or [], key=lambda a: a.use != "home")
    if addresses:
        first = addresses[0]
        address_text = first.text or "".join(
            p for p in [first.state, first.city, first.district, *(first.line or [])] if p
        )
        division = extension_code(first, systems.DIVISION_CODE_EXTENSION) or ""
        if not division and first.district and re.fullmatch(r"\d{6}", first.district):
            division = first.district
    home = None
    if resource.managingOrganization is not None:
        home = _reference_id(resource.managingOrganization.reference, "Organization")
        if home is None:
            issues.append(
                (_("Refer to an Organization by its id."), "Patient.managingOrganization")
            )
    if issues:
        raise MappingError(issues)
    return PatientInput(
        name=chinese,
        name_pinyin=pinyin,
        sex=sex,
        birth_date=birth_date,
        id_number=id_number,
        mobile=phones[0].value if phones else "",
        address=address_text[:255],
        address_division_code=division,
        home_organisation_id=home,
        identifiers=identifiers,
    )


# Registry field names (of ValidationFailed.fields) as FHIR expressions.
PATIENT_FIELD_PATHS = {
    "name": "Patient.name",
    "sex": "Patient.gender",
    "birth_date": "Patient.birthDate",
    "id_number": "Patient.identifier",
    "identifiers": "Patient.identifier",
    "mobile": "Patient.telecom",
    "address_division_code": "Patient.address",
    "home_organisation": "Patient.managingOrganization",
}
