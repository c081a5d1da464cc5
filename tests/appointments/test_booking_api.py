"""Booking through the API: on a patient's behalf, scoping, windows, approval, status, ics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from appointments import services
from appointments.models import Booking, BookingEvent, Slot
from registry.models import AuditEvent, DomainEvent
from tests.appointments.conftest import future_day, local, make_slot

URL = "/api/v1/appointments/"


def _book(client, patient, slot, **headers):
    return client.post(
        f"{URL}bookings/",
        {"patient": str(patient.external_id), "slot": str(slot.external_id)},
        format="json",
        headers=headers,
    )


@pytest.mark.django_db
def test_village_doctor_books_for_own_patient(community, schedule, patient):
    slot = make_slot(schedule, local(future_day(), 9))
    response = _book(community.client("village_a"), patient, slot)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "confirmed" and body["channel"] == "staff"
    slot.refresh_from_db()
    assert slot.booked == 1
    booking = Booking.objects.get(external_id=body["id"])
    assert BookingEvent.objects.filter(booking=booking, kind="create").exists()
    event = DomainEvent.objects.get(event_type="appointments.booking.created")
    assert event.payload["booking"] == body["id"] and "name" not in str(event.payload)
    assert AuditEvent.objects.filter(
        action="booking.create", patient_id=patient.external_id, outcome="success"
    ).exists()


@pytest.mark.django_db
def test_other_organisation_cannot_book_or_see_the_patient(community, schedule, patient):
    slot = make_slot(schedule, local(future_day(), 9))
    own = _book(community.client("village_a"), patient, slot).json()
    other = community.client("other_doctor")
    # Booking for someone else's patient: 404, audited, nothing changed
    response = _book(other, patient, make_slot(schedule, local(future_day(), 10)))
    assert response.status_code == 404
    assert Booking.objects.count() == 1
    assert AuditEvent.objects.filter(
        action="booking.create", outcome="denied", actor_username="other_doctor"
    ).exists()
    # Reading, cancelling or listing the booking: 404 too
    assert other.get(f"{URL}bookings/{own['id']}/").status_code == 404
    assert other.post(f"{URL}bookings/{own['id']}/cancel/", {}, format="json").status_code == 404
    assert other.get(f"{URL}bookings/", {"patient": str(patient.external_id)}).status_code == 404
    assert other.get(f"{URL}bookings/").json()["results"] == []
    assert Booking.objects.get().status == "confirmed"
    assert AuditEvent.objects.filter(
        action="booking.read", outcome="denied", actor_username="other_doctor"
    ).exists()
    # The sibling village's doctor cannot book for this patient either
    assert _book(community.client("village_b"), patient, slot).status_code == 404


@pytest.mark.django_db
def test_admin_and_anonymous_cannot_book(community, schedule, patient):
    from rest_framework.test import APIClient

    slot = make_slot(schedule, local(future_day(), 9))
    assert _book(APIClient(), patient, slot).status_code in (401, 403)
    assert _book(community.client("county_admin"), patient, slot).status_code == 403
    assert Booking.objects.count() == 0


@pytest.mark.django_db
def test_full_slot_answers_slot_taken(community, schedule, patient, patient_factory):
    slot = make_slot(schedule, local(future_day(), 9))
    client = community.client("village_a")
    assert _book(client, patient, slot).status_code == 201
    other = patient_factory(home_organisation=community.village_a)
    response = _book(client, other, slot)
    assert response.status_code == 409 and response.json()["code"] == "slot_taken"


@pytest.mark.django_db
def test_one_active_booking_per_patient_type_and_day(community, schedule, patient):
    client = community.client("village_a")
    day = future_day()
    assert _book(client, patient, make_slot(schedule, local(day, 9))).status_code == 201
    second = make_slot(schedule, local(day, 10))
    response = _book(client, patient, second)
    assert response.status_code == 409 and response.json()["code"] == "already_booked"
    second.refresh_from_db()
    assert second.booked == 0  # the seat claim was rolled back
    other_type = make_slot(schedule, local(day, 11), visit_type="in_person")
    assert _book(client, patient, other_type).status_code == 201


@pytest.mark.django_db
def test_cancel_frees_the_seat_and_reschedule_moves(community, schedule, patient):
    client = community.client("village_a")
    a = make_slot(schedule, local(future_day(), 9))
    b = make_slot(schedule, local(future_day(4), 9))
    booking = _book(client, patient, a).json()
    moved = client.post(
        f"{URL}bookings/{booking['id']}/reschedule/", {"slot": str(b.external_id)}, format="json"
    )
    assert moved.status_code == 201, moved.json()
    assert moved.json()["rescheduled_from"] == booking["id"]
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.booked, b.booked) == (0, 1)
    assert Booking.objects.get(external_id=booking["id"]).status == "cancelled"
    assert DomainEvent.objects.filter(event_type="appointments.booking.rescheduled").exists()
    cancelled = client.post(
        f"{URL}bookings/{moved.json()['id']}/cancel/", {"reason": "better"}, format="json"
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    b.refresh_from_db()
    assert b.booked == 0
    # a reschedule is one "rescheduled" event, not a cancellation
    assert DomainEvent.objects.filter(event_type="appointments.booking.cancelled").count() == 1
    # cancelling twice is refused
    again = client.post(f"{URL}bookings/{moved.json()['id']}/cancel/", {}, format="json")
    assert again.status_code == 409


@pytest.mark.django_db
@override_settings(HUIZHEN_BOOKING_CANCEL_HOURS=24, HUIZHEN_BOOKING_RESCHEDULE_HOURS=24)
def test_patient_windows_close_before_the_visit_but_staff_may_still_act(schedule, patient):
    soon = make_slot(schedule, timezone.now() + timedelta(hours=5))
    later = make_slot(schedule, timezone.now() + timedelta(days=5))
    as_patient = services.BookingActor.patient(patient)
    booking = services.booking_create(actor=as_patient, patient=patient, slot_id=soon.external_id)
    with pytest.raises(services.Conflict) as exc:
        services.booking_cancel(actor=as_patient, booking=booking)
    assert exc.value.code == "window_closed"
    with pytest.raises(services.Conflict):
        services.booking_reschedule(actor=as_patient, booking=booking, slot_id=later.external_id)
    booking.refresh_from_db()
    assert booking.status == "confirmed"


@pytest.mark.django_db
def test_approval_mode_portal_requests_wait_for_confirmation(community, schedule, patient):
    schedule.approval_required = True
    schedule.save()
    slot = make_slot(schedule, local(future_day(), 9))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    assert booking.status == "requested"
    slot.refresh_from_db()
    assert slot.booked == 1  # a request holds its seat
    # the village doctor may not confirm at the township centre; the township doctor may
    url = f"{URL}bookings/{booking.external_id}/status/"
    denied = community.client("village_a").post(url, {"status": "confirmed"}, format="json")
    assert denied.status_code == 403
    ok = community.client("township_doctor").post(url, {"status": "confirmed"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"


@pytest.mark.django_db
def test_rejecting_a_request_frees_the_seat(community, schedule, patient):
    schedule.approval_required = True
    schedule.save()
    slot = make_slot(schedule, local(future_day(), 9))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    response = community.client("township_doctor").post(
        f"{URL}bookings/{booking.external_id}/status/",
        {"status": "rejected", "reason": "full"},
        format="json",
    )
    assert response.status_code == 200
    slot.refresh_from_db()
    assert slot.booked == 0


@pytest.mark.django_db
def test_check_in_today_and_no_show_after_start(community, schedule, patient, patient_factory):
    client = community.client("township_doctor")
    now = timezone.localtime()
    slot = make_slot(schedule, now + timedelta(minutes=1))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    url = f"{URL}bookings/{booking.external_id}/status/"
    early = client.post(url, {"status": "no_show"}, format="json")
    assert early.status_code == 409 and early.json()["code"] == "too_early"
    if timezone.localdate(slot.starts_at) == timezone.localdate():
        response = client.post(url, {"status": "checked_in"}, format="json")
        assert response.status_code == 200 and response.json()["status"] == "checked_in"
    # a past booking (made when it was still ahead) can be marked missed
    other = patient_factory(home_organisation=community.village_a)
    past_slot = make_slot(schedule, now + timedelta(days=1))
    missed = services.booking_create(
        actor=services.BookingActor.patient(other), patient=other, slot_id=past_slot.external_id
    )
    Booking.objects.filter(pk=missed.pk).update(starts_at=now - timedelta(hours=1))
    response = client.post(
        f"{URL}bookings/{missed.external_id}/status/", {"status": "no_show"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "no_show"


@pytest.mark.django_db
def test_ics_download(community, schedule, patient):
    slot = make_slot(schedule, local(future_day(), 9))
    booking = _book(community.client("village_a"), patient, slot).json()
    response = community.client("village_a").get(f"{URL}bookings/{booking['id']}/ics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    text = response.content.decode()
    assert "BEGIN:VEVENT" in text and f"UID:{booking['id']}@huizhen" in text
    assert "DTSTART:" in text and "Z" in text.split("DTSTART:")[1].split("\r\n")[0]
    assert "东山镇卫生院" in text


@pytest.mark.django_db
def test_recurring_every_four_weeks(community, schedule, patient):
    day = future_day()
    slots = [make_slot(schedule, local(day + timedelta(weeks=4 * i), 9)) for i in range(3)]
    Slot.objects.filter(pk=slots[2].pk).update(booked=1)  # the third is full
    response = community.client("village_a").post(
        f"{URL}bookings/recurring/",
        {
            "patient": str(patient.external_id),
            "slot": str(slots[0].external_id),
            "interval_weeks": 4,
            "until": (day + timedelta(weeks=12)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert len(body["bookings"]) == 2
    reasons = {s["reason"] for s in body["skipped"]}
    assert reasons == {"slot_taken", "no_slot"}


@pytest.mark.django_db
def test_slot_search_hides_full_and_past_slots(community, schedule, patient):
    free = make_slot(schedule, local(future_day(), 9))
    full = make_slot(schedule, local(future_day(), 10))
    Slot.objects.filter(pk=full.pk).update(booked=1)
    make_slot(schedule, timezone.now() - timedelta(hours=1))
    response = community.client("village_a").get(f"{URL}slots/")
    ids = [s["id"] for s in response.json()["results"]]
    assert ids == [str(free.external_id)]


@pytest.mark.django_db
def test_schedule_management_is_for_admins_of_the_organisation(community):
    body = {"organisation": str(community.township.external_id), "name": "门诊"}
    assert (
        community.client("village_a").post(f"{URL}schedules/", body, format="json").status_code
        == 403
    )
    assert (
        community.client("other_admin").post(f"{URL}schedules/", body, format="json").status_code
        == 403
    )
    created = community.client("county_admin").post(f"{URL}schedules/", body, format="json")
    assert created.status_code == 201
    template = community.client("county_admin").post(
        f"{URL}schedules/{created.json()['id']}/templates/",
        {
            "weekday": 0,
            "start": "08:00",
            "end": "10:00",
            "slot_minutes": 20,
            "capacity": 2,
            "visit_type": "in_person",
        },
        format="json",
    )
    assert template.status_code == 201, template.json()


@pytest.mark.django_db
def test_holiday_api(community):
    admin = community.client("county_admin")
    response = admin.get(f"{URL}holidays/", {"date_from": "2026-09-28", "date_to": "2026-10-12"})
    days = {d["date"]: d for d in response.json()}
    assert days["2026-10-01"]["statutory_holiday"] and days["2026-10-10"]["adjusted_workday"]
    refused = community.client("village_a").post(
        f"{URL}holidays/", {"date": "2027-02-06", "is_workday": True}, format="json"
    )
    assert refused.status_code == 403
    ok = admin.post(f"{URL}holidays/", {"date": "2027-02-06", "is_workday": True}, format="json")
    assert ok.status_code == 200
