"""The patient portal (/portal/): sign in by SMS code, see visits and due follow-ups, book,
cancel, reschedule. Thin views: parse the form, call one service or selector, render.

A portal session is not a Django user; ``portal_auth.session_patient`` resolves it. Every
read and write of the patient's data is audited as ``patient:<masked mobile>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from registry import audit
from registry.errors import DomainError
from registry.models import AuditOutcome, Organisation, Patient

from . import idempotency, portal_auth, selectors, services, waitlist
from .models import Booking, VisitType, WaitlistEntry, WaitlistStatus

PORTAL_VISIT_TYPES = (VisitType.CHRONIC_FOLLOWUP, VisitType.IN_PERSON, VisitType.TELECONSULT)


def _client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def portal_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        resolved = portal_auth.session_patient(request.session)
        if resolved is None:
            return redirect("portal-login")
        request.portal_patient, request.portal_mobile = resolved  # type: ignore[attr-defined]
        request.portal_actor = services.portal_actor(resolved[1])  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


def _audit_read(request: HttpRequest, patient: Patient, action: str, **detail: Any) -> None:
    audit.record(
        actor=request.portal_actor,  # type: ignore[attr-defined]
        action=action,
        object_type="patient",
        object_id=str(patient.external_id),
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
        detail=detail,
    )


def _own_booking(request: HttpRequest, booking_id: str, action: str) -> Booking:
    """The portal's gate: only the signed-in patient's own bookings; others are 404, audited."""
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    try:
        key = uuid.UUID(str(booking_id))
    except ValueError:
        key = None
    booking = (
        Booking.objects.filter(patient=patient, external_id=key)
        .select_related("patient", "slot__schedule", "organisation")
        .first()
        if key
        else None
    )
    if booking is None:
        audit.record(
            actor=request.portal_actor,  # type: ignore[attr-defined]
            action=action,
            outcome=AuditOutcome.DENIED,
            object_type="booking",
            object_id=str(booking_id)[:64],
        )
        raise Http404(_("No such visit."))
    return booking


def _run(request: HttpRequest, operation: str, work: Callable[[], tuple[int, Any]]) -> bool:
    """Run a portal write once per form (its hidden ``idem`` key); flash the outcome."""
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    try:
        answer = idempotency.run(
            scope=f"patient:{patient.external_id}",
            key=request.POST.get("idem") or None,
            operation=operation,
            body={k: v for k, v in request.POST.items() if k not in {"csrfmiddlewaretoken"}},
            work=work,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return False
    if answer.status_code >= 400:
        messages.error(request, answer.body.get("detail", _("That did not work.")))
        return False
    messages.success(request, answer.body.get("message", _("Done.")))
    return True


# --- sign in ---------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def login_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {"mobile": "", "step": "mobile"}
    status = 200
    if request.method == "POST":
        mobile = request.POST.get("mobile", "")
        context["mobile"] = mobile
        try:
            if request.POST.get("action") == "verify":
                context["step"] = "code"
                signed_in = portal_auth.otp_verify(
                    mobile=mobile,
                    code=request.POST.get("code", ""),
                    client_address=_client_address(request),
                )
                if not signed_in.patients:
                    raise portal_auth.CodeRejected(_("No patient record uses this number."))
                portal_auth.session_start(request.session, signed_in)
                return redirect("portal-home")
            portal_auth.otp_request(mobile=mobile, client_address=_client_address(request))
            context["step"] = "code"
            context["info"] = _(
                "If this number is registered with a clinic, a 6-digit code is on its way."
            )
        except DomainError as exc:
            context["error"] = exc.message
            status = exc.status_code
    return render(request, "appointments/portal/login.html", context, status=status)


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    portal_auth.session_end(request.session)
    return redirect("portal-login")


@require_POST
@portal_login_required
def switch_patient(request: HttpRequest) -> HttpResponse:
    portal_auth.session_switch(request.session, request.POST.get("patient", ""))
    return redirect("portal-home")


# --- home ---------------------------------------------------------------------------------


@portal_login_required
def home_page(request: HttpRequest) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    bookings = list(selectors.booking_list_for_patient(patient=patient))
    offers = list(
        WaitlistEntry.objects.filter(
            patient=patient, status=WaitlistStatus.OFFERED, hold_expires_at__gt=timezone.now()
        ).select_related("offered_slot__schedule__organisation")
    )
    due = selectors.followup_due_for_patient(patient=patient)
    _audit_read(request, patient, "portal.home.read", bookings=len(bookings))
    data = request.session.get(portal_auth.SESSION_KEY, {})
    others = Patient.objects.filter(external_id__in=data.get("patients", [])).exclude(pk=patient.pk)
    return render(
        request,
        "appointments/portal/home.html",
        {
            "patient": patient,
            "masked_mobile": portal_auth.masked(request.portal_mobile),  # type: ignore[attr-defined]
            "bookings": bookings,
            "offers": offers,
            "due": due,
            "others": others,
            "idem": uuid.uuid4(),
        },
    )


# --- booking ---------------------------------------------------------------------------------


def _slots_by_day(slots: list) -> list[tuple[Any, list]]:
    days: dict[Any, list] = {}
    for slot in slots:
        days.setdefault(timezone.localdate(slot.starts_at), []).append(slot)
    return sorted(days.items())


@require_http_methods(["GET", "POST"])
@portal_login_required
def book_page(request: HttpRequest) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    actor = services.BookingActor.patient(patient)
    if request.method == "POST":
        slot_id = request.POST.get("slot", "")

        def work() -> tuple[int, Any]:
            booking = services.booking_create(actor=actor, patient=patient, slot_id=slot_id)
            if booking.status == "requested":
                text = _("Your request was sent. The clinic will confirm it by SMS.")
            else:
                text = _("Booked. We will remind you by SMS before the visit.")
            return 201, {"booking": str(booking.external_id), "message": text}

        if _run(request, "portal.book", work):
            return redirect("portal-home")
        return redirect(request.get_full_path())
    visit_type = request.GET.get("visit_type") or VisitType.CHRONIC_FOLLOWUP
    if visit_type not in PORTAL_VISIT_TYPES:
        visit_type = VisitType.CHRONIC_FOLLOWUP
    clinic = _clinic(request.GET.get("clinic"))
    context: dict[str, Any] = {
        "visit_type": visit_type,
        "visit_types": [(v.value, v.label) for v in PORTAL_VISIT_TYPES],
        "clinic": clinic,
        "idem": uuid.uuid4(),
    }
    if clinic is None:
        context["clinics"] = selectors.clinics_with_open_slots(visit_type=visit_type)
    else:
        today = timezone.localdate()
        slots = list(
            selectors.slot_search(
                organisation_id=clinic.external_id,
                visit_type=visit_type,
                date_from=today,
                date_to=today + timedelta(days=14),
            )[:200]
        )
        context["days"] = _slots_by_day(slots)
    return render(request, "appointments/portal/book.html", context)


def _clinic(value: str | None) -> Organisation | None:
    if not value:
        return None
    try:
        return Organisation.objects.filter(external_id=uuid.UUID(value), is_active=True).first()
    except ValueError:
        return None


@require_POST
@portal_login_required
def cancel_booking(request: HttpRequest, booking_id: str) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    booking = _own_booking(request, booking_id, "booking.cancel")

    def work() -> tuple[int, Any]:
        services.booking_cancel(actor=services.BookingActor.patient(patient), booking=booking)
        return 200, {"message": _("The visit is cancelled.")}

    _run(request, f"portal.cancel:{booking_id}", work)
    return redirect("portal-home")


@require_http_methods(["GET", "POST"])
@portal_login_required
def reschedule_page(request: HttpRequest, booking_id: str) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    booking = _own_booking(request, booking_id, "booking.reschedule")
    if request.method == "POST":
        slot_id = request.POST.get("slot", "")

        def work() -> tuple[int, Any]:
            services.booking_reschedule(
                actor=services.BookingActor.patient(patient), booking=booking, slot_id=slot_id
            )
            return 201, {"message": _("The visit is moved.")}

        if _run(request, f"portal.reschedule:{booking_id}", work):
            return redirect("portal-home")
    today = timezone.localdate()
    slots = [
        s
        for s in selectors.slot_search(
            organisation_id=booking.organisation.external_id,
            visit_type=booking.visit_type,
            date_from=today,
            date_to=today + timedelta(days=28),
        )[:200]
        if s.pk != booking.slot_id
    ]
    _audit_read(request, patient, "portal.booking.read", booking=str(booking.external_id))
    return render(
        request,
        "appointments/portal/reschedule.html",
        {"booking": booking, "days": _slots_by_day(slots), "idem": uuid.uuid4()},
    )


@portal_login_required
def booking_ics(request: HttpRequest, booking_id: str) -> HttpResponse:
    booking = _own_booking(request, booking_id, "booking.ics")
    services.audit_read(request.portal_actor, booking, action="booking.ics")  # type: ignore[attr-defined]
    response = HttpResponse(
        selectors.booking_ics(booking), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="visit-{booking.external_id}.ics"'
    return response


@require_POST
@portal_login_required
def accept_offer(request: HttpRequest, entry_id: str) -> HttpResponse:
    patient: Patient = request.portal_patient  # type: ignore[attr-defined]
    try:
        entry = WaitlistEntry.objects.get(patient=patient, external_id=uuid.UUID(entry_id))
    except (ValueError, WaitlistEntry.DoesNotExist):
        raise Http404(_("No such offer.")) from None

    def work() -> tuple[int, Any]:
        waitlist.waitlist_accept(actor=services.BookingActor.patient(patient), entry=entry)
        return 201, {"message": _("Booked. We will remind you by SMS before the visit.")}

    _run(request, f"portal.offer:{entry_id}", work)
    return redirect("portal-home")
