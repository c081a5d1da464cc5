"""ServiceRequest (a consult request) and DiagnosticReport (a signed consult report)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from django.urls import reverse
from django.utils.translation import gettext as _
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.servicerequest import ServiceRequest

from consult.models import ConsultRequest, ConsultType, Report

from .. import systems
from .common import Links, last_updated

# consult state -> ServiceRequest.status
STATUS_OF_STATE = {
    "draft": "draft",
    "submitted": "active",
    "queued": "active",
    "accepted": "active",
    "in_progress": "active",
    "reported": "active",
    "returned": "on-hold",
    "signed": "completed",
    "delivered": "completed",
    "closed": "completed",
    "declined": "revoked",
    "cancelled": "revoked",
}
PRIORITY_OF_URGENCY = {"routine": "routine", "urgent": "urgent", "emergency": "stat"}


def consult_type_concept(code: str) -> dict[str, Any]:
    label = str(ConsultType(code).label) if code in ConsultType.values else code
    return {
        "coding": [{"system": systems.CONSULT_TYPE, "code": code, "display": label}],
        "text": label,
    }


def _staff_reference(user: Any) -> dict[str, Any] | None:
    """A Practitioner reference to a user's staff profile (None without one)."""
    staff = getattr(user, "staff", None) if user is not None else None
    if staff is None:
        return None
    ref: dict[str, Any] = {"reference": f"Practitioner/{staff.external_id}"}
    if staff.display_name:
        ref["display"] = staff.display_name
    return ref


def _organization_reference(org: Any) -> dict[str, Any]:
    return {"reference": f"Organization/{org.external_id}", "display": org.name}


def service_request_to_fhir(consult: ConsultRequest) -> ServiceRequest:
    """Needs ``patient``, ``requesting_organisation``, ``centre`` and ``requester__staff``
    selected."""
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(consult.external_id),
        **last_updated(consult.updated_at),
        "status": STATUS_OF_STATE.get(consult.state, "unknown"),
        "intent": "order",
        "category": [consult_type_concept(consult.consult_type)],
        "code": consult_type_concept(consult.consult_type),
        "priority": PRIORITY_OF_URGENCY.get(consult.urgency, "routine"),
        "subject": {"reference": f"Patient/{consult.patient.external_id}"},
        "authoredOn": (consult.submitted_at or consult.created_at).isoformat(),
    }
    requester = _staff_reference(consult.requester)
    if requester is not None:
        body["requester"] = requester
    elif consult.requesting_organisation_id:
        body["requester"] = _organization_reference(consult.requesting_organisation)
    if consult.centre_id:
        body["performer"] = [_organization_reference(consult.centre)]
    if consult.proposed_time:
        body["occurrenceDateTime"] = consult.proposed_time.isoformat()
    if consult.reason:
        body["reasonCode"] = [{"text": consult.reason}]
    notes = [text for text in (consult.clinical_question, consult.record_summary) if text]
    if notes:
        body["note"] = [{"text": text} for text in notes]
    return ServiceRequest.model_validate(body)


def report_pdf_url(report: Report, links: Links) -> str:
    path = reverse(
        "consult-report-pdf",
        kwargs={"consult_id": str(report.consult.external_id), "version": report.version},
    )
    return urljoin(links.fhir_base, path)


def diagnostic_report_to_fhir(report: Report, links: Links) -> DiagnosticReport:
    """A signed report version. Needs ``consult__patient``, ``consult__centre`` and
    ``signed_by__staff`` selected. The signed PDF is the ``presentedForm``."""
    consult = report.consult
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(report.external_id),
        **last_updated(report.updated_at),
        "identifier": [
            {
                "system": f"{systems.BASE}/sid/consult-report",
                "value": f"{consult.external_id}/{report.version}",
            }
        ],
        "basedOn": [{"reference": f"ServiceRequest/{consult.external_id}"}],
        "status": "amended" if report.previous_id else "final",
        "category": [{"text": _("Teleconsultation report")}],
        "code": consult_type_concept(consult.consult_type),
        "subject": {"reference": f"Patient/{consult.patient.external_id}"},
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "language": "zh-CN",
                "url": report_pdf_url(report, links),
                "title": _("Consult report, version %(v)s") % {"v": report.version},
            }
        ],
    }
    if report.signed_at:
        body["issued"] = report.signed_at.isoformat()
        body["effectiveDateTime"] = report.signed_at.isoformat()
    performers = [ref for ref in (_staff_reference(report.signed_by),) if ref]
    if consult.centre_id:
        performers.append(_organization_reference(consult.centre))
    if performers:
        body["performer"] = performers
    if report.impression:
        body["conclusion"] = report.impression
    codes = [c for c in (report.icd10_codes or []) if isinstance(c, str) and c.strip()]
    if codes:
        body["conclusionCode"] = [
            {"coding": [{"system": systems.ICD10, "code": code.strip()}]} for code in codes
        ]
    return DiagnosticReport.model_validate(body)
