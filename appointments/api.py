"""REST API of appointments: parse, resolve the principal, call one service or selector,
render. Booking, cancel and reschedule take an ``Idempotency-Key`` header."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from registry.access import access_patient
from registry.api import ORG_HEADER, StaffView, _valid
from registry.errors import NotFound
from registry.models import Organisation

from . import holidays, idempotency, scheduling, selectors, services, waitlist
from .access import schedule_for_manager
from .models import Schedule, WaitlistEntry
from .serializers import (
    BookingCreateSerializer,
    BookingQuerySerializer,
    BookingSerializer,
    CancelSerializer,
    DayKindSerializer,
    DueItemSerializer,
    DueQuerySerializer,
    ExceptionInputSerializer,
    HolidayInputSerializer,
    HolidayQuerySerializer,
    HolidaySerializer,
    RecurringCreateSerializer,
    RescheduleSerializer,
    ScheduleCreateSerializer,
    ScheduleSerializer,
    SeriesSerializer,
    SlotQuerySerializer,
    SlotSerializer,
    StatusChangeSerializer,
    TemplateInputSerializer,
    TemplateSerializer,
    WaitlistEntrySerializer,
    WaitlistJoinSerializer,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="A unique key per intended write; a retry with the same key and body gets the "
    "stored answer, the same key with another body gets 422.",
)


class AppointmentsView(StaffView):
    def idempotent(
        self, request: Request, operation: str, work: Callable[[], tuple[int, Any]]
    ) -> Response:
        answer = idempotency.run(
            scope=f"user:{request.user.pk}",
            key=request.headers.get("Idempotency-Key"),
            operation=operation,
            body=request.data,
            work=work,
        )
        response = Response(answer.body, status=answer.status_code)
        if answer.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


# --- schedules -----------------------------------------------------------------------------------


class ScheduleListView(AppointmentsView):
    @extend_schema(
        parameters=[OpenApiParameter("organisation", str, required=False), ORG_HEADER],
        responses=ScheduleSerializer(many=True),
        summary="Active schedules (optionally of one organisation)",
    )
    def get(self, request: Request) -> Response:
        self.principal  # noqa: B018 - members only
        qs = Schedule.objects.filter(is_active=True).select_related("organisation")
        org = request.query_params.get("organisation")
        if org:
            qs = qs.filter(organisation__external_id=_valid_uuid(org))
        return self.paginate(qs.prefetch_related("templates").order_by("name"), ScheduleSerializer)

    @extend_schema(
        request=ScheduleCreateSerializer,
        responses={201: ScheduleSerializer},
        parameters=[ORG_HEADER],
        summary="Create a schedule (admins and coordinators of the organisation)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ScheduleCreateSerializer, request.data)
        schedule = scheduling.schedule_create(
            principal=self.principal,
            organisation_id=data["organisation"],
            name=data["name"],
            department=data["department"],
            approval_required=data["approval_required"],
            observes_holidays=data["observes_holidays"],
            adjusted_workday_as=data["adjusted_workday_as"],
        )
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class TemplateCreateView(AppointmentsView):
    @extend_schema(
        request=TemplateInputSerializer,
        responses={201: TemplateSerializer},
        parameters=[ORG_HEADER],
        summary="Add a weekly session; the schedule's slots are regenerated",
    )
    def post(self, request: Request, schedule_id: str) -> Response:
        data = _valid(TemplateInputSerializer, request.data)
        data.pop("is_active", None)
        template = scheduling.template_create(
            principal=self.principal,
            schedule_id=schedule_id,
            data=scheduling.TemplateInput(**data),
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(AppointmentsView):
    @extend_schema(
        request=TemplateInputSerializer,
        responses=TemplateSerializer,
        parameters=[ORG_HEADER],
        summary="Change a weekly session; booked slots are kept as they are",
    )
    def put(self, request: Request, template_id: str) -> Response:
        data = _valid(TemplateInputSerializer, request.data)
        active = data.pop("is_active", True)
        template = scheduling.template_update(
            principal=self.principal,
            template_id=template_id,
            data=scheduling.TemplateInput(**data),
            active=active,
        )
        return Response(TemplateSerializer(template).data)


class ScheduleGenerateView(AppointmentsView):
    @extend_schema(request=None, responses=dict, parameters=[ORG_HEADER])
    def post(self, request: Request, schedule_id: str) -> Response:
        schedule = schedule_for_manager(self.principal, schedule_id, action="schedule.generate")
        result = scheduling.slots_generate(schedule=schedule)
        return Response(result.__dict__)


class ExceptionCreateView(AppointmentsView):
    @extend_schema(
        request=ExceptionInputSerializer,
        responses={201: dict},
        parameters=[ORG_HEADER],
        summary="Leave or closure: no slots in the period (free slots are withdrawn)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ExceptionInputSerializer, request.data)
        organisation = Organisation.objects.filter(external_id=data["organisation"]).first()
        if organisation is None:
            raise NotFound(_("No such organisation."))
        schedule = None
        if data.get("schedule"):
            schedule = Schedule.objects.filter(
                external_id=data["schedule"], organisation=organisation
            ).first()
            if schedule is None:
                raise NotFound(_("No such schedule."))
        exc = scheduling.exception_create(
            principal=self.principal,
            organisation=organisation,
            schedule=schedule,
            kind=data["kind"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            reason=data["reason"],
        )
        return Response({"id": str(exc.external_id)}, status=status.HTTP_201_CREATED)


class HolidayView(AppointmentsView):
    @extend_schema(
        parameters=[HolidayQuerySerializer, ORG_HEADER],
        responses=DayKindSerializer(many=True),
        summary="Statutory holidays and adjusted working days in a period (overrides applied)",
    )
    def get(self, request: Request) -> Response:
        self.principal  # noqa: B018
        query = _valid(HolidayQuerySerializer, request.query_params)
        if (query["date_to"] - query["date_from"]).days > 400:
            query["date_to"] = query["date_from"].replace(year=query["date_from"].year + 1)
        kinds = holidays.day_kinds(query["date_from"], query["date_to"])
        return Response(
            DayKindSerializer(sorted(kinds.values(), key=lambda k: k.day), many=True).data
        )

    @extend_schema(
        request=HolidayInputSerializer,
        responses=HolidaySerializer,
        parameters=[ORG_HEADER],
        summary="Correct the statutory calendar for one day (admins)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(HolidayInputSerializer, request.data)
        override = scheduling.holiday_override_set(
            principal=self.principal,
            day=data["date"],
            is_workday=data["is_workday"],
            name=data["name"],
            works_as_weekday=data["works_as_weekday"],
        )
        return Response(HolidaySerializer(override).data)


# --- slots and bookings ------------------------------------------------------------------------


class SlotListView(AppointmentsView):
    @extend_schema(
        parameters=[SlotQuerySerializer, ORG_HEADER],
        responses=SlotSerializer(many=True),
        summary="Free slots",
    )
    def get(self, request: Request) -> Response:
        self.principal  # noqa: B018
        query = _valid(SlotQuerySerializer, request.query_params)
        slots = selectors.slot_search(
            organisation_id=query.get("organisation"),
            schedule_id=query.get("schedule"),
            visit_type=query.get("visit_type"),
            date_from=query.get("date_from"),
            date_to=query.get("date_to"),
            available_only=query["available"],
        )
        return self.paginate(slots, SlotSerializer)


class BookingListView(AppointmentsView):
    @extend_schema(
        parameters=[BookingQuerySerializer, ORG_HEADER],
        responses=BookingSerializer(many=True),
        summary="Bookings of the patients you look after and at your organisations",
    )
    def get(self, request: Request) -> Response:
        query = _valid(BookingQuerySerializer, request.query_params)
        principal = self.principal
        if query.get("patient"):
            access_patient(principal, query["patient"], action="booking.list")
        bookings = selectors.booking_list_for_staff(
            principal=principal,
            patient_id=query.get("patient"),
            day=query.get("day"),
            status=query.get("status"),
        )
        return self.paginate(bookings, BookingSerializer)

    @extend_schema(
        request=BookingCreateSerializer,
        responses={201: BookingSerializer, 409: dict},
        parameters=[IDEMPOTENCY_HEADER, ORG_HEADER],
        summary="Book a slot for a patient you look after (409 slot_taken when full)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(BookingCreateSerializer, request.data)
        principal = self.principal

        def work() -> tuple[int, Any]:
            booking = services.booking_create_for_patient(
                principal=principal,
                patient_id=data["patient"],
                slot_id=data["slot"],
                note=data["note"],
            )
            return status.HTTP_201_CREATED, BookingSerializer(booking).data

        return self.idempotent(request, "booking.create", work)


class RecurringBookingView(AppointmentsView):
    @extend_schema(
        request=RecurringCreateSerializer,
        responses={201: SeriesSerializer},
        parameters=[IDEMPOTENCY_HEADER, ORG_HEADER],
        summary="Book the same time every N weeks until a date (occurrences that cannot be "
        "booked are listed under skipped)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(RecurringCreateSerializer, request.data)
        principal = self.principal

        def work() -> tuple[int, Any]:
            services._require_clinical(principal, "booking.create")
            patient = access_patient(principal, data["patient"], action="booking.create")
            result = services.booking_create_recurring(
                actor=services.BookingActor.staff(principal),
                patient=patient,
                slot_id=data["slot"],
                interval_weeks=data["interval_weeks"],
                until=data["until"],
                note=data["note"],
            )
            body = {
                "series": str(result.series.external_id),
                "bookings": BookingSerializer(result.bookings, many=True).data,
                "skipped": [{"date": d.isoformat(), "reason": r} for d, r in result.skipped],
            }
            return status.HTTP_201_CREATED, body

        return self.idempotent(request, "booking.recurring", work)


class BookingDetailView(AppointmentsView):
    @extend_schema(responses=BookingSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, booking_id: str) -> Response:
        booking = services.staff_booking(self.principal, booking_id, action="booking.read")
        services.audit_read(self.principal.actor, booking)
        return Response(BookingSerializer(booking).data)


class BookingCancelView(AppointmentsView):
    @extend_schema(
        request=CancelSerializer,
        responses=BookingSerializer,
        parameters=[IDEMPOTENCY_HEADER, ORG_HEADER],
        summary="Cancel; the seat is offered to the waitlist",
    )
    def post(self, request: Request, booking_id: str) -> Response:
        data = _valid(CancelSerializer, request.data)
        principal = self.principal

        def work() -> tuple[int, Any]:
            booking = services.staff_booking(principal, booking_id, action="booking.cancel")
            booking = services.booking_cancel(
                actor=services.BookingActor.staff(principal),
                booking=booking,
                reason=data["reason"],
            )
            return status.HTTP_200_OK, BookingSerializer(booking).data

        return self.idempotent(request, f"booking.cancel:{booking_id}", work)


class BookingRescheduleView(AppointmentsView):
    @extend_schema(
        request=RescheduleSerializer,
        responses={201: BookingSerializer},
        parameters=[IDEMPOTENCY_HEADER, ORG_HEADER],
        summary="Move to another slot (a new booking; the old one is cancelled)",
    )
    def post(self, request: Request, booking_id: str) -> Response:
        data = _valid(RescheduleSerializer, request.data)
        principal = self.principal

        def work() -> tuple[int, Any]:
            booking = services.staff_booking(principal, booking_id, action="booking.reschedule")
            new = services.booking_reschedule(
                actor=services.BookingActor.staff(principal), booking=booking, slot_id=data["slot"]
            )
            return status.HTTP_201_CREATED, BookingSerializer(new).data

        return self.idempotent(request, f"booking.reschedule:{booking_id}", work)


class BookingStatusView(AppointmentsView):
    @extend_schema(
        request=StatusChangeSerializer,
        responses=BookingSerializer,
        parameters=[ORG_HEADER],
        summary="Confirm or reject a request, check in, mark a no-show, complete",
    )
    def post(self, request: Request, booking_id: str) -> Response:
        data = _valid(StatusChangeSerializer, request.data)
        booking = services.staff_booking(
            self.principal, booking_id, action=f"booking.{data['status']}"
        )
        booking = services.booking_set_status(
            principal=self.principal, booking=booking, target=data["status"], reason=data["reason"]
        )
        return Response(BookingSerializer(booking).data)


class BookingIcsView(AppointmentsView):
    @extend_schema(responses={(200, "text/calendar"): bytes}, parameters=[ORG_HEADER])
    def get(self, request: Request, booking_id: str) -> HttpResponse:
        booking = services.staff_booking(self.principal, booking_id, action="booking.ics")
        services.audit_read(self.principal.actor, booking, action="booking.ics")
        return ics_response(booking)


# --- waitlist and due list --------------------------------------------------------------------


class WaitlistView(AppointmentsView):
    @extend_schema(
        request=WaitlistJoinSerializer,
        responses={201: WaitlistEntrySerializer},
        parameters=[ORG_HEADER],
        summary="Put a patient on a schedule's waitlist",
    )
    def post(self, request: Request) -> Response:
        data = _valid(WaitlistJoinSerializer, request.data)
        services._require_clinical(self.principal, "waitlist.join")
        patient = access_patient(self.principal, data["patient"], action="waitlist.join")
        entry = waitlist.waitlist_join(
            actor=services.BookingActor.staff(self.principal),
            patient=patient,
            schedule_id=data["schedule"],
            visit_type=data["visit_type"],
            earliest=data["earliest"],
            latest=data["latest"],
        )
        return Response(WaitlistEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class WaitlistAcceptView(AppointmentsView):
    @extend_schema(
        request=None,
        responses={201: BookingSerializer},
        parameters=[IDEMPOTENCY_HEADER, ORG_HEADER],
        summary="Book the seat held for a waitlisted patient",
    )
    def post(self, request: Request, entry_id: str) -> Response:
        principal = self.principal

        def work() -> tuple[int, Any]:
            entry = WaitlistEntry.objects.filter(external_id=_valid_uuid(entry_id)).first()
            if entry is None:
                raise NotFound(_("No such waitlist entry."))
            services._require_clinical(principal, "waitlist.accept")
            access_patient(principal, entry.patient.external_id, action="waitlist.accept")
            booking = waitlist.waitlist_accept(
                actor=services.BookingActor.staff(principal), entry=entry
            )
            return status.HTTP_201_CREATED, BookingSerializer(booking).data

        return self.idempotent(request, f"waitlist.accept:{entry_id}", work)


class DueListView(AppointmentsView):
    @extend_schema(
        parameters=[DueQuerySerializer, ORG_HEADER],
        responses=DueItemSerializer(many=True),
        summary="Chronic patients due or overdue for a follow-up with no visit booked",
    )
    def get(self, request: Request) -> Response:
        query = _valid(DueQuerySerializer, request.query_params)
        principal = self.principal
        services._require_clinical(principal, "appointments.due_list")
        items = selectors.due_list(principal=principal, days_ahead=query["days_ahead"])
        services.audit_due_list(principal.actor, items)
        return Response(DueItemSerializer(items, many=True).data)


def _valid_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(_("Not found.")) from None


def ics_response(booking: Any) -> HttpResponse:
    response = HttpResponse(
        selectors.booking_ics(booking), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="visit-{booking.external_id}.ics"'
    return response
