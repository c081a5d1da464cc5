"""Portal pages of chronic care: home readings with trend charts, and signing a family-doctor
contract with an SMS code. Thin: parse the form, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from registry.errors import DomainError
from registry.models import Patient

from . import contracts, readings
from .chronic_models import ReadingKind
from .pages import _audit_read, portal_login_required

PORTAL_KINDS = [(k.value, k.label) for k in ReadingKind if k.value in readings.PATIENT_KINDS]


@require_http_methods(["GET", "POST"])
@portal_login_required
def readings_page(request: HttpRequest) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            readings.reading_record_by_patient(
                patient=patient,
                data=readings.ReadingInput(
                    kind=request.POST.get("kind", ""),
                    value=request.POST.get("value", ""),
                    value2=request.POST.get("value2") or None,
                ),
                actor=request.portal_actor,  # type: ignore[attr-defined]
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Saved. Thank you."))
        return redirect("portal-readings")
    charts = readings.trend_charts(patient=patient)
    recent = list(readings.readings_of(patient=patient, days=90).order_by("-taken_at")[:10])
    _audit_read(request, patient, "portal.readings.read", readings=len(recent))
    return render(
        request,
        "appointments/portal/readings.html",
        {
            "patient": patient,
            "kinds": PORTAL_KINDS,
            # The SVG is built from numbers and escaped labels by appointments.charts.
            "charts": [(kind, mark_safe(svg)) for kind, svg in charts],  # noqa: S308
            "recent": recent,
        },
    )


@require_http_methods(["GET", "POST"])
@portal_login_required
def contract_page(request: HttpRequest) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    actor = request.portal_actor  # type: ignore[attr-defined]
    context: dict[str, Any] = {"patient": patient, "step": "choose"}
    if request.method == "POST":
        try:
            if request.POST.get("action") == "confirm":
                contracts.contract_confirm(
                    patient=patient,
                    contract_id=request.POST.get("contract", ""),
                    code=request.POST.get("code", ""),
                    actor=actor,
                )
                messages.success(request, _("Signed. Your family-doctor team will contact you."))
                return redirect("portal-contract")
            pending = contracts.contract_start(
                patient=patient,
                team_id=request.POST.get("team", ""),
                package_id=request.POST.get("package", ""),
                actor=actor,
            )
            context.update(step="code", pending=pending)
        except DomainError as exc:
            context["error"] = exc.message
            if request.POST.get("action") == "confirm":
                context["step"] = "code"
                context["pending"] = patient.contracts.filter(
                    status="pending", external_id=_safe_uuid(request.POST.get("contract"))
                ).first()
                if context["pending"] is None:
                    context["step"] = "choose"
    context["current"] = contracts.contract_current(patient)
    context["teams"] = contracts.teams_for_patient(patient)
    context["packages"] = contracts.packages_for_patient(patient)
    _audit_read(request, patient, "portal.contract.read")
    return render(request, "appointments/portal/contract.html", context)


def _safe_uuid(value: str | None) -> Any:
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
