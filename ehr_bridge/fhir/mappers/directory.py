"""Practitioner (a staff member) and Organization (an organisation of the directory)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner

from registry.models import Organisation, OrganisationKind, ProfessionalTitle, StaffProfile

from .. import systems
from .common import human_names, last_updated


def practitioner_to_fhir(staff: StaffProfile) -> Practitioner:
    """Needs ``user`` selected."""
    body: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": str(staff.external_id),
        **last_updated(staff.updated_at),
        "active": bool(staff.user.is_active),
        "name": human_names(staff.display_name),
    }
    if staff.licence_number:
        body["identifier"] = [
            {
                "use": "official",
                "system": systems.PRACTITIONER_LICENCE,
                "value": staff.licence_number,
            }
        ]
    if staff.professional_title:
        title = ProfessionalTitle(staff.professional_title)
        body["qualification"] = [
            {
                "code": {
                    "coding": [
                        {
                            "system": systems.PROFESSIONAL_TITLE,
                            "code": title.value,
                            "display": str(title.label),
                        }
                    ],
                    "text": str(title.label),
                }
            }
        ]
    return Practitioner.model_validate(body)


def organization_to_fhir(org: Organisation) -> Organization:
    """Needs ``parent`` selected and ``dicom_aes`` and ``hl7_facilities`` prefetched."""
    identifiers = [{"system": systems.DIVISION_CODE, "value": org.division_code}]
    identifiers += [
        {"system": systems.HL7_FACILITY, "value": f.code} for f in org.hl7_facilities.all()
    ]
    identifiers += [
        {"system": systems.DICOM_AE_TITLE, "value": ae.ae_title} for ae in org.dicom_aes.all()
    ]
    kind = OrganisationKind(org.kind)
    body: dict[str, Any] = {
        "resourceType": "Organization",
        "id": str(org.external_id),
        **last_updated(org.updated_at),
        "active": bool(org.is_active),
        "name": org.name,
        "identifier": identifiers,
        "type": [
            {
                "coding": [
                    {"system": systems.ORGANIZATION_TYPE, "code": "prov"},
                    {"system": systems.ORGANISATION_KIND, "code": kind.value},
                ],
                "text": str(kind.label),
            }
        ],
    }
    if org.parent_id:
        body["partOf"] = {
            "reference": f"Organization/{org.parent.external_id}",
            "display": org.parent.name,
        }
    return Organization.model_validate(body)
