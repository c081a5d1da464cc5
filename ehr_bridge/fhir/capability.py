"""The CapabilityStatement at ``/fhir/R4/metadata``, built from the resource table."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .http import FHIR_JSON
from .resources import RESOURCE_TYPES, ResourceType
from .search import MAX_COUNT, MAX_OFFSET

SECURITY = (
    "Send 'Authorization: Bearer <token>' with a token from POST /api/v1/auth/token/, or use "
    "a signed-in session. With several memberships, 'X-Huizhen-Organisation: <organisation "
    "id>' chooses the organisation to act in (default: the first). Every read and search of "
    "patient data (Patient, ImagingStudy, ServiceRequest, DiagnosticReport, Appointment, "
    "Observation) is scoped to what that organisation may see, through the same gates as the "
    "REST API, and is written to the audit trail; something not visible answers 404, exactly "
    "as something that does not exist."
)
SEARCH_NOTES = (
    "Unknown search parameters, modifiers or malformed values answer 400 with an "
    "OperationOutcome; send 'Prefer: handling=lenient' to have unknown parameters ignored. "
    "A comma in a value means OR, a repeated parameter AND. String parameters match any "
    "part of the value."
)


def _software() -> dict[str, str]:
    try:
        return {"name": "Huizhen", "version": metadata.version("huizhen")}
    except metadata.PackageNotFoundError:  # running from a checkout, not an installed package
        return {"name": "Huizhen"}


def _resource(rt: ResourceType) -> dict[str, Any]:
    interactions = [{"code": "read"}, {"code": "search-type"}]
    if rt.create is not None:
        interactions.append({"code": "create"})
    return {
        "type": rt.name,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rt.name}",
        "documentation": rt.documentation,
        "interaction": interactions,
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {"name": p.name, "type": p.type, "documentation": p.documentation}
            for p in rt.search_params
        ],
    }


def capability_statement(*, base_url: str) -> CapabilityStatement:
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": timezone.now().isoformat(),
            "publisher": settings.HUIZHEN_SITE_NAME,
            "kind": "instance",
            "software": _software(),
            "implementation": {
                "description": f"{settings.HUIZHEN_SITE_NAME} FHIR R4 facade",
                "url": base_url,
            },
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON, "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": SEARCH_NOTES,
                    "security": {
                        "cors": False,
                        "service": [{"text": "Bearer token"}],
                        "description": SECURITY,
                    },
                    "resource": [_resource(rt) for rt in RESOURCE_TYPES],
                    "searchParam": [
                        {
                            "name": "_count",
                            "type": "number",
                            "documentation": f"Page size, 0 to {MAX_COUNT} (default 20).",
                        },
                        {
                            "name": "_offset",
                            "type": "number",
                            "documentation": f"Entries to skip, up to {MAX_OFFSET}.",
                        },
                    ],
                }
            ],
        }
    )
