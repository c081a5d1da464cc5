"""Orders, lab results and appointments from a partner, applied in the worker after the ACK.

Each ``apply_*`` runs inside ``services._apply_one``'s transaction and returns the patient
the message concerned. A message that cannot be applied raises ``Unapplicable`` (or a
``DomainError`` from the service it called, e.g. a full slot): the worker parks it with the
reason and alerts the partner's administrators, as for any other failure. Every write goes
through the owning app's services, which audit it; lab results are audited here.

Consent (why an HIS order may be submitted at once). The consult rules require a recorded
teleconsult consent before submission. A hospital places a remote-read order from its own
HIS after its clinician has obtained the patient's consent (a signed form in the chart, as
the 2018 remote-medical-service rules ask of the inviting party), so by default an order
records that consent in Huizhen through ``registry.services.consent_record`` — method from
the partner's ``order_consent_method`` (``written`` unless configured), noted with the
partner and the placer order number, recorded by the requester — and the consult is
submitted and routed at once, which is what the hospital expects of an order. A partner
whose HIS does not stand for consent has ``order_consent_method`` empty: its orders become
drafts that wait for a clinician to record the consent and submit. A patient who already
has an active teleconsult consent is never given a second one.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext as _

from appointments import services as booking_services
from appointments.models import Booking, BookingChannel, Schedule, Slot, VisitType
from appointments.states import ACTIVE_STATUSES
from consult import services as consult_services
from consult.models import ConsultRequest
from consult.states import EDITABLE, TRANSITIONS, ConsultState
from registry import audit
from registry.access import CLINICAL_ROLES, Principal, principal_for
from registry.errors import DomainError
from registry.feeds import FeedIdentifier
from registry.models import (
    ConsentKind,
    Membership,
    Patient,
    PatientIdentifier,
    Role,
)
from registry.selectors import consent_is_active
from registry.services import consent_record

from . import adt
from .inbound_map import (
    AppointmentRequest,
    InboundMappingError,
    OrderData,
    appointment,
    consult_type_for,
    lab_observations,
    orders,
)
from .mllp import Segment
from .models import (
    Hl7Partner,
    InboundAppointment,
    InboundMessage,
    InboundOrder,
    LabResult,
    LabResultStatus,
)
from .parse import Parsed

logger = logging.getLogger(__name__)
User = get_user_model()


class Unapplicable(DomainError):
    """The message is well formed but cannot be applied as it stands: park it."""

    default_code = "hl7_unapplicable"


def _tz() -> str:
    return str(settings.TIME_ZONE)


def _require_partner(row: InboundMessage) -> Hl7Partner:
    if row.partner is None:
        raise Unapplicable(
            _("Orders, results and appointments are taken only from a configured partner.")
        )
    return row.partner


def find_patient(parsed: Parsed, partner: Hl7Partner) -> Patient:
    """The live patient PID-3 names within the partner's assigning authority (as ADT
    matches), merges followed. Raises Unapplicable for none or for two different ones."""
    pid = parsed.first("PID")
    if pid is None:
        raise Unapplicable(_("PID segment missing."))
    identifiers, id_number = adt._identifiers(pid, 3, partner.authority)
    if not identifiers:
        identifiers, id_number = adt._identifiers(pid, 2, partner.authority)
    found: dict[int, Patient] = {}
    for ident in identifiers:
        found.update(_by_identifier(ident))
    if not found and id_number:
        for patient in Patient.objects.filter(id_number=id_number, merged_into__isnull=True):
            found[patient.pk] = patient
    if len(found) > 1:
        raise Unapplicable(_("The identifiers in PID-3 name different patients."))
    if not found:
        shown = ", ".join(f"{i.authority}/{i.kind}/{i.value}" for i in identifiers) or "-"
        raise Unapplicable(
            _(
                "Unknown patient (%(identifiers)s): send an ADT (A04/A28) for the patient "
                "first, then replay this message."
            )
            % {"identifiers": shown}
        )
    return next(iter(found.values()))


def _by_identifier(ident: FeedIdentifier) -> dict[int, Patient]:
    row = (
        PatientIdentifier.objects.select_related("patient")
        .filter(authority=ident.authority, kind=ident.kind, value=ident.value)
        .first()
    )
    if row is None:
        return {}
    patient = row.patient
    seen: set[int] = set()
    while patient.merged_into_id is not None and patient.pk not in seen:
        seen.add(patient.pk)
        patient = Patient.objects.get(pk=patient.merged_into_id)
    return {patient.pk: patient}


def _system_actor(partner: Hl7Partner) -> audit.Actor:
    return audit.Actor(
        user_id=None,
        username=f"hl7:{partner.sending_facility}"[:150],
        organisation_id=partner.organisation_id,
    )


# --- orders → consult requests ------------------------------------------------------------------


def _requester(partner: Hl7Partner, order: OrderData) -> Principal:
    """Who requests the consult: the ordering provider (ORC-12.1 = a staff licence number)
    when they are a doctor of the partner's organisation, else the partner's order account."""
    organisation = partner.organisation
    requesting_roles = CLINICAL_ROLES - {Role.SPECIALIST}
    if order.provider_id:
        membership = (
            Membership.objects.select_related("user")
            .filter(
                organisation=organisation,
                is_active=True,
                role__in=requesting_roles,
                user__is_active=True,
                user__staff__licence_number=order.provider_id,
            )
            .first()
        )
        if membership is not None:
            return principal_for(membership.user, str(organisation.external_id))
    account = partner.order_requester
    if account is None or not account.is_active:
        raise Unapplicable(
            _(
                "The ordering provider %(provider)s is not a doctor of %(organisation)s in "
                "Huizhen and the partner has no order account: set one on the HL7 partner."
            )
            % {
                "provider": order.provider_id or "-",
                "organisation": organisation.name,
            }
        )
    try:
        principal = principal_for(account, str(organisation.external_id))
    except DomainError as exc:
        raise Unapplicable(
            _("The partner's order account is not a member of %(organisation)s.")
            % {"organisation": organisation.name}
        ) from exc
    if principal.role not in requesting_roles:
        raise Unapplicable(_("The partner's order account is not a requesting doctor."))
    return principal


def _consult_input(order: OrderData, consult_type: str | None) -> consult_services.ConsultInput:
    service = order.service_text or order.service_code
    question = order.clinical_question or order.reason
    if not question:
        question = _("%(service)s ordered by the hospital.") % {"service": service}
    reason = order.reason or _("Hospital order %(order)s: %(service)s") % {
        "order": order.placer_order_number,
        "service": service,
    }
    summary = ""
    if order.provider_name or order.provider_id:
        summary = _("Ordered by %(provider)s.") % {
            "provider": order.provider_name or order.provider_id
        }
    return consult_services.ConsultInput(
        consult_type=consult_type,
        urgency=order.urgency,
        reason=reason[:2000],
        clinical_question=question,
        record_summary=summary or None,
    )


def _order_new(
    row: InboundMessage, partner: Hl7Partner, patient: Patient, order: OrderData
) -> None:
    if InboundOrder.objects.filter(
        partner=partner, placer_order_number=order.placer_order_number
    ).exists():
        return  # a repeated NW: the consult exists already
    consult_type = consult_type_for(order, partner.service_map or {})
    if consult_type is None:
        raise Unapplicable(
            _(
                "No consult type for service %(code)s (%(text)s): add the code to the "
                "partner's service map."
            )
            % {"code": order.service_code or "-", "text": order.service_text or "-"}
        )
    principal = _requester(partner, order)
    consult = consult_services.consult_create(
        principal=principal,
        patient_id=patient.external_id,
        data=_consult_input(order, consult_type),
    )
    InboundOrder.objects.create(
        partner=partner,
        placer_order_number=order.placer_order_number,
        filler_order_number=order.filler_order_number,
        consult=consult,
        service_code=order.service_code,
        service_text=order.service_text,
        ordering_provider=(f"{order.provider_id} {order.provider_name}".strip())[:200],
        message=row,
    )
    now = timezone.now()
    consented = consent_is_active(patient=patient, kind=ConsentKind.TELECONSULT)
    if not consented and partner.order_consent_method:
        consent_record(
            principal=principal,
            patient_id=patient.external_id,
            kind=ConsentKind.TELECONSULT,
            method=partner.order_consent_method,
            note=_("Implied by order %(order)s of %(partner)s.")
            % {"order": order.placer_order_number, "partner": partner.name},
            granted_at=min(order.ordered_at or now, now),
        )
        consented = True
    if consented:
        consult_services.consult_submit(principal=principal, consult_id=consult.external_id)


def _existing_order(partner: Hl7Partner, order: OrderData) -> InboundOrder:
    mapped = (
        InboundOrder.objects.select_related("consult")
        .filter(partner=partner, placer_order_number=order.placer_order_number)
        .first()
    )
    if mapped is None:
        raise Unapplicable(
            _("No order %(order)s of this partner is known.") % {"order": order.placer_order_number}
        )
    return mapped


def _order_cancel(partner: Hl7Partner, order: OrderData) -> None:
    mapped = _existing_order(partner, order)
    consult = mapped.consult
    if consult.state == ConsultState.CANCELLED:
        return  # a repeated CA
    if ConsultState.CANCELLED not in TRANSITIONS.get(consult.state, frozenset()):
        raise Unapplicable(
            _("Order %(order)s cannot be cancelled: its consult is already %(state)s.")
            % {"order": order.placer_order_number, "state": consult.get_state_display()}
        )
    principal = _requester(partner, order)
    consult_services.consult_cancel(
        principal=principal,
        consult_id=consult.external_id,
        reason=_("Cancelled by the hospital (order %(order)s).")
        % {"order": order.placer_order_number},
    )


def _order_change(partner: Hl7Partner, order: OrderData) -> None:
    mapped = _existing_order(partner, order)
    consult = mapped.consult
    if consult.state not in EDITABLE:
        raise Unapplicable(
            _("Order %(order)s cannot be changed: its consult is already %(state)s.")
            % {"order": order.placer_order_number, "state": consult.get_state_display()}
        )
    consult_type = consult_type_for(order, partner.service_map or {})
    principal = _requester(partner, order)
    consult_services.consult_update(
        principal=principal,
        consult_id=consult.external_id,
        data=_consult_input(order, consult_type),
    )


def apply_orders(row: InboundMessage, parsed: Parsed) -> Patient:
    """ORM^O01 / OMG^O19: NW creates a consult (and submits it, see the module docstring),
    CA cancels it while its state allows, XO changes a consult still editable. A repeated
    NW or CA changes nothing. Other order controls park the message."""
    partner = _require_partner(row)
    try:
        items = orders(parsed.segments, tz=_tz())
    except InboundMappingError as exc:
        raise Unapplicable(str(exc)) from exc
    patient = find_patient(parsed, partner)
    for order in items:
        if order.control == "NW":
            _order_new(row, partner, patient, order)
        elif order.control == "CA":
            _order_cancel(partner, order)
        elif order.control == "XO":
            _order_change(partner, order)
        else:
            raise Unapplicable(
                _("Order control %(control)s is not supported (NW, CA, XO).")
                % {"control": order.control or "-"}
            )
    return patient


def placer_order_number(*, consult: ConsultRequest, partner: Hl7Partner) -> str:
    """The partner's placer order number of the consult (empty when it did not order it)."""
    return (
        InboundOrder.objects.filter(consult=consult, partner=partner)
        .values_list("placer_order_number", flat=True)
        .first()
        or ""
    )


# --- lab results --------------------------------------------------------------------------------


_RESULT_FIELDS = (
    "value_type",
    "value",
    "units",
    "reference_range",
    "abnormal_flag",
    "status",
    "observed_at",
)


def apply_lab_results(row: InboundMessage, parsed: Parsed) -> Patient:
    """ORU^R01: every OBX becomes a ``LabResult`` of the patient. A later result for the
    same order and observation (corrected, or final after preliminary) replaces the current
    one, which is kept as history; the same values again change nothing."""
    partner = _require_partner(row)
    try:
        observations = lab_observations(parsed.segments, tz=_tz())
    except InboundMappingError as exc:
        raise Unapplicable(str(exc)) from exc
    patient = find_patient(parsed, partner)
    created = replaced = 0
    for obs in observations:
        current = (
            LabResult.objects.select_for_update()
            .filter(
                partner=partner,
                patient=patient,
                order_key=obs.order_key,
                code=obs.code,
                sub_id=obs.sub_id,
                is_current=True,
            )
            .first()
        )
        if current is not None:
            if all(getattr(current, f) == getattr(obs, f) for f in _RESULT_FIELDS):
                continue
            if current.status != LabResultStatus.PRELIMINARY and obs.status == "P":
                continue  # a late preliminary never replaces a final or corrected result
            current.is_current = False
            current.save(update_fields=["is_current", "updated_at"])
            replaced += 1
        LabResult.objects.create(
            patient=patient,
            organisation=partner.organisation,
            partner=partner,
            message=row,
            order_key=obs.order_key,
            placer_order_number=obs.placer_order_number,
            filler_order_number=obs.filler_order_number,
            order_code=obs.order_code,
            order_text=obs.order_text,
            code=obs.code,
            coding_system=obs.coding_system,
            text=obs.text,
            sub_id=obs.sub_id,
            value_type=obs.value_type,
            value=obs.value,
            units=obs.units,
            reference_range=obs.reference_range,
            abnormal_flag=obs.abnormal_flag,
            status=obs.status,
            observed_at=obs.observed_at,
            replaces=current,
        )
        created += 1
    if created:
        audit.record(
            actor=_system_actor(partner),
            action="lab_result.create.feed",
            object_type="hl7_message",
            object_id=str(row.external_id),
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={"results": created, "replaced": replaced},
        )
    return patient


# --- appointments -------------------------------------------------------------------------------


def _his_actor(partner: Hl7Partner) -> booking_services.BookingActor:
    return booking_services.BookingActor(_system_actor(partner), BookingChannel.HIS)


def _slot_for(partner: Hl7Partner, request: AppointmentRequest) -> Slot:
    """The slot the appointment takes: the first resource code (AIP, AIL, AIS) the partner
    maps to one of its community's active schedules, at the appointment's start."""
    if request.start is None:
        raise Unapplicable(_("SCH-11 (appointment timing) gives no start time."))
    mapping: dict[str, Any] = partner.schedule_map or {}
    schedule = None
    for code in request.resource_codes:
        target = mapping.get(code)
        if not target:
            continue
        schedule = (
            Schedule.objects.filter(
                external_id=str(target),
                is_active=True,
                organisation__path__startswith=partner.organisation.path,
            ).first()
            if _is_uuid(str(target))
            else None
        )
        if schedule is not None:
            break
    if schedule is None:
        raise Unapplicable(
            _(
                "No schedule for the resources %(codes)s: map one of them to a schedule in "
                "the partner's schedule map."
            )
            % {"codes": ", ".join(request.resource_codes) or "-"}
        )
    slots = Slot.objects.filter(schedule=schedule, starts_at=request.start).order_by("visit_type")
    if request.service_code in VisitType.values:
        slots = slots.filter(visit_type=request.service_code)
    slot = slots.first()
    if slot is None:
        raise Unapplicable(
            _("%(schedule)s has no slot starting at %(start)s.")
            % {"schedule": schedule.name, "start": request.start.isoformat()}
        )
    return slot


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _booked(
    partner: Hl7Partner, request: AppointmentRequest, patient: Patient
) -> InboundAppointment:
    mapped = (
        InboundAppointment.objects.select_related("booking__slot", "booking__patient")
        .filter(partner=partner, filler_appointment_id=request.filler_id)
        .first()
    )
    if mapped is None:
        raise Unapplicable(
            _("No appointment %(id)s of this partner is known.") % {"id": request.filler_id}
        )
    booked_for = mapped.booking.patient
    if patient.pk not in (booked_for.pk, booked_for.merged_into_id):
        raise Unapplicable(
            _("Appointment %(id)s was booked for another patient.") % {"id": request.filler_id}
        )
    return mapped


def _book(
    row: InboundMessage, partner: Hl7Partner, patient: Patient, request: AppointmentRequest
) -> None:
    if InboundAppointment.objects.filter(
        partner=partner, filler_appointment_id=request.filler_id
    ).exists():
        return  # a repeated S12
    slot = _slot_for(partner, request)
    booking = booking_services.booking_create(
        actor=_his_actor(partner),
        patient=patient,
        slot_id=slot.external_id,
        note=request.reason,
    )
    InboundAppointment.objects.create(
        partner=partner,
        filler_appointment_id=request.filler_id,
        placer_appointment_id=request.placer_id,
        booking=booking,
        message=row,
    )


def _move(partner: Hl7Partner, request: AppointmentRequest, patient: Patient) -> None:
    mapped = _booked(partner, request, patient)
    booking = mapped.booking
    if booking.status not in ACTIVE_STATUSES:
        raise Unapplicable(
            _("Appointment %(id)s cannot be changed: its booking is %(status)s.")
            % {"id": request.filler_id, "status": booking.get_status_display()}
        )
    if request.start is None and not request.resource_codes:
        return  # nothing about time or place changed
    slot = _slot_for(partner, request)
    if slot.pk == booking.slot_id:
        return  # same slot: nothing to move
    new = booking_services.booking_reschedule(
        actor=_his_actor(partner), booking=booking, slot_id=slot.external_id
    )
    mapped.booking = new
    mapped.save(update_fields=["booking", "updated_at"])


def _cancel(
    partner: Hl7Partner, request: AppointmentRequest, patient: Patient, reason: str
) -> None:
    mapped = _booked(partner, request, patient)
    booking: Booking = mapped.booking
    if booking.status not in ACTIVE_STATUSES:
        return  # already cancelled (a repeated S15) or over
    booking_services.booking_cancel(
        actor=_his_actor(partner),
        booking=booking,
        reason=reason or _("Cancelled by the hospital."),
    )


APPLIED_SIU = frozenset({"S12", "S13", "S14", "S15"})


def apply_appointment(row: InboundMessage, parsed: Parsed) -> Patient:
    """SIU^S12 books (a full slot raises SlotTaken: parked), S13/S14 move the booking when
    its time or resource changed, S15 cancels. Repeats change nothing. The bookings made
    here are not echoed to the partner (``bookings.send_booking`` skips it)."""
    partner = _require_partner(row)
    try:
        request = appointment(parsed.segments, tz=_tz())
    except InboundMappingError as exc:
        raise Unapplicable(str(exc)) from exc
    patient = find_patient(parsed, partner)
    if row.trigger_event == "S12":
        _book(row, partner, patient, request)
    elif row.trigger_event in ("S13", "S14"):
        _move(partner, request, patient)
    else:
        sch: Segment | None = parsed.first("SCH")
        reason = (sch.component(6, 2) or sch.component(6, 1)) if sch else ""
        _cancel(partner, request, patient, reason)
    return patient
