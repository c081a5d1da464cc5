"""Reads of consult requests (ServiceRequest) and signed consult reports (DiagnosticReport),
scoped by the consult app's gate (``consult.access.consults_visible_to`` and
``access_consult``). A read is audited as the REST API's consult read is (a refusal of an
existing consult too); a search writes one row naming its parameters, never their values.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from consult.access import access_consult, audit_read, consults_visible_to
from consult.models import ConsultRequest, ConsultType, Report, ReportStatus
from registry import audit
from registry.access import Principal
from registry.errors import NotFound

from . import systems
from .search import SearchQuery, Token
from .selectors import NONE, _any_of, _ids_q, _uuid, date_q

# FHIR ServiceRequest.status -> the consult states it stands for.
STATES_OF_STATUS: dict[str, tuple[str, ...]] = {
    "draft": ("draft",),
    "active": ("submitted", "queued", "accepted", "in_progress", "reported"),
    "on-hold": ("returned",),
    "completed": ("signed", "delivered", "closed"),
    "revoked": ("declined", "cancelled"),
}
_CONSULT_RELATED = (
    "patient",
    "requesting_organisation",
    "centre",
    "requester__staff",
    "assignee__staff",
)


def _patient_q(field: str) -> Callable[[object], Q]:
    def build(value: object) -> Q:
        key = _uuid(value)
        return Q(**{f"{field}__external_id": key}) if key else NONE

    return build


def _status_q(token: Token) -> Q:
    return Q(state__in=STATES_OF_STATUS.get(token.code or "", ()))


def _category_q(token: Token) -> Q:
    if token.system not in (None, systems.CONSULT_TYPE):
        return NONE
    if token.code is None:
        return ~NONE
    return Q(consult_type=token.code) if token.code in ConsultType.values else NONE


SERVICE_REQUEST_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "patient": lambda _m, values: _any_of(values, _patient_q("patient")),
    "subject": lambda _m, values: _any_of(values, _patient_q("patient")),
    "status": lambda _m, values: _any_of(values, _status_q),
    "category": lambda _m, values: _any_of(values, _category_q),
    "code": lambda _m, values: _any_of(values, _category_q),
    "authored": lambda _m, values: _any_of(values, lambda v: date_q("created_at__date", v)),
}


def service_request_search(*, principal: Principal, query: SearchQuery) -> QuerySet[ConsultRequest]:
    consults = consults_visible_to(principal)
    for criterion in query.criteria:
        consults = consults.filter(
            SERVICE_REQUEST_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    audit.record(
        actor=principal.actor,
        action="consult.search",
        object_type="consult",
        detail={"criteria": query.names(), "interface": "fhir"},
    )
    return consults.select_related(*_CONSULT_RELATED).order_by("-created_at", "-pk")


def service_request_read(*, principal: Principal, resource_id: str) -> ConsultRequest:
    """Through the consult gate: NotFound (a refusal audited) for what is not visible."""
    consult = access_consult(principal, resource_id)
    audit_read(principal, consult)
    return (
        ConsultRequest.objects.select_related(*_CONSULT_RELATED).filter(pk=consult.pk).first()
        or consult
    )


# --- DiagnosticReport --------------------------------------------------------------------------

_REPORT_RELATED = (
    "consult__patient",
    "consult__centre",
    "consult__requesting_organisation",
    "signed_by__staff",
)

DIAGNOSTIC_REPORT_FILTERS: dict[str, Callable[[str, tuple[object, ...]], Q]] = {
    "_id": lambda _m, values: _ids_q(values),
    "patient": lambda _m, values: _any_of(values, _patient_q("consult__patient")),
    "subject": lambda _m, values: _any_of(values, _patient_q("consult__patient")),
    "based-on": lambda _m, values: _any_of(values, lambda v: _ids_q((v,), "consult__external_id")),
    "issued": lambda _m, values: _any_of(values, lambda v: date_q("signed_at__date", v)),
}


def _signed_reports() -> QuerySet[Report]:
    return Report.objects.filter(status=ReportStatus.SIGNED)


def diagnostic_report_search(*, principal: Principal, query: SearchQuery) -> QuerySet[Report]:
    """Signed versions of the reports of the consults the principal may see (a draft is not
    a report yet)."""
    reports = _signed_reports().filter(consult__in=consults_visible_to(principal).values("pk"))
    for criterion in query.criteria:
        reports = reports.filter(
            DIAGNOSTIC_REPORT_FILTERS[criterion.name](criterion.modifier, criterion.values)
        )
    audit.record(
        actor=principal.actor,
        action="consult.report.search",
        object_type="report",
        detail={"criteria": query.names(), "interface": "fhir"},
    )
    return reports.select_related(*_REPORT_RELATED).order_by("-signed_at", "-pk")


def diagnostic_report_read(*, principal: Principal, resource_id: str) -> Report:
    """The consult of the report goes through the consult gate (a refusal is audited); the
    read is audited against the report, as printing it is."""
    key = _uuid(resource_id)
    consult_key = (
        _signed_reports()
        .filter(external_id=key)
        .values_list("consult__external_id", flat=True)
        .first()
        if key
        else None
    )
    if consult_key is None:
        raise NotFound(_("No such report."))
    consult = access_consult(principal, consult_key, action="consult.report.read")
    report = _signed_reports().select_related(*_REPORT_RELATED).get(external_id=key)
    audit.record(
        actor=principal.actor,
        action="consult.report.read",
        object_type="report",
        object_id=report.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={
            "consult": str(consult.external_id),
            "version": report.version,
            "interface": "fhir",
        },
    )
    return report
