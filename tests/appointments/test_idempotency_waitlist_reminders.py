"""Idempotency keys, the waitlist with its holds, reminders and the village doctor's due list."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from appointments import reminders, services, tasks, waitlist
from appointments.models import Booking, IdempotentRequest, ReminderSent, WaitlistEntry
from registry.models import DomainEvent, NotificationDelivery
from tests.appointments.conftest import future_day, local, make_slot

URL = "/api/v1/appointments/"


def _sms_to(patient) -> int:
    """SMS deliveries queued for a patient through registry.notifications.notify."""
    return NotificationDelivery.objects.filter(channel="sms", notification__patient=patient).count()


def _book(client, patient, slot, key):
    return client.post(
        f"{URL}bookings/",
        {"patient": str(patient.external_id), "slot": str(slot.external_id)},
        format="json",
        headers={"Idempotency-Key": key},
    )


@pytest.mark.django_db
def test_retry_with_the_same_key_books_once_and_gets_the_same_answer(community, schedule, patient):
    client = community.client("village_a")
    slot = make_slot(schedule, local(future_day(), 9), capacity=3)
    first = _book(client, patient, slot, "k-1")
    again = _book(client, patient, slot, "k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1
    slot.refresh_from_db()
    assert slot.booked == 1
    assert DomainEvent.objects.filter(event_type="appointments.booking.created").count() == 1


@pytest.mark.django_db
def test_same_key_different_body_is_refused(community, schedule, patient):
    client = community.client("village_a")
    a = make_slot(schedule, local(future_day(), 9))
    b = make_slot(schedule, local(future_day(), 10))
    assert _book(client, patient, a, "k-2").status_code == 201
    response = _book(client, patient, b, "k-2")
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    b.refresh_from_db()
    assert b.booked == 0


@pytest.mark.django_db
def test_an_error_answer_is_stored_and_replayed(community, schedule, patient, patient_factory):
    client = community.client("village_a")
    slot = make_slot(schedule, local(future_day(), 9))
    other = patient_factory(home_organisation=community.village_a)
    assert _book(client, other, slot, "k-3").status_code == 201
    taken = _book(client, patient, slot, "k-4")
    assert taken.status_code == 409
    # the seat frees up, but a retry of the same request gets the same stored answer
    Booking.objects.get(patient=other).delete()
    slot.__class__.objects.filter(pk=slot.pk).update(booked=0)
    replay = _book(client, patient, slot, "k-4")
    assert replay.status_code == 409 and replay.json() == taken.json()
    # keys are per caller: another user's identical key is independent
    assert IdempotentRequest.objects.filter(key="k-4").count() == 1


@pytest.mark.django_db
def test_cancel_retry_is_idempotent(community, schedule, patient):
    client = community.client("village_a")
    slot = make_slot(schedule, local(future_day(), 9))
    booking = _book(client, patient, slot, "k-5").json()
    url = f"{URL}bookings/{booking['id']}/cancel/"
    first = client.post(url, {}, format="json", headers={"Idempotency-Key": "c-1"})
    second = client.post(url, {}, format="json", headers={"Idempotency-Key": "c-1"})
    assert first.status_code == second.status_code == 200
    without_key = client.post(url, {}, format="json")
    assert without_key.status_code == 409  # a new cancel of a cancelled booking
    assert DomainEvent.objects.filter(event_type="appointments.booking.cancelled").count() == 1


# --- waitlist ---


@pytest.mark.django_db
@override_settings(HUIZHEN_WAITLIST_HOLD_MINUTES=30)
def test_freed_seat_is_offered_by_sms_held_and_passed_on_when_the_hold_expires(
    community, schedule, patient, patient_factory
):
    day = future_day()
    slot = make_slot(schedule, local(day, 9))
    holder = patient_factory(home_organisation=community.village_a)
    booking = services.booking_create(
        actor=services.BookingActor.patient(holder), patient=holder, slot_id=slot.external_id
    )
    second = patient_factory(home_organisation=community.village_a)
    staff = services.BookingActor.staff(_principal(community))
    first_entry = waitlist.waitlist_join(
        actor=staff,
        patient=patient,
        schedule_id=schedule.external_id,
        visit_type="chronic_followup",
        earliest=day,
        latest=day,
    )
    second_entry = waitlist.waitlist_join(
        actor=staff,
        patient=second,
        schedule_id=schedule.external_id,
        visit_type="chronic_followup",
        earliest=day - timedelta(days=1),
        latest=day + timedelta(days=1),
    )
    # When the booking is cancelled
    services.booking_cancel(actor=staff, booking=booking)
    # Then the first waiting patient is offered the seat, held (counted as booked), by SMS
    first_entry.refresh_from_db()
    slot.refresh_from_db()
    assert first_entry.status == "offered" and first_entry.offered_slot_id == slot.pk
    assert slot.booked == 1
    assert _sms_to(patient) == 1
    # nobody else can take the held seat
    with pytest.raises(services.SlotTaken):
        services.booking_create(
            actor=services.BookingActor.patient(second), patient=second, slot_id=slot.external_id
        )
    # When the hold expires
    WaitlistEntry.objects.filter(pk=first_entry.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.waitlist_holds_expire.apply().get() == 1
    first_entry.refresh_from_db()
    second_entry.refresh_from_db()
    slot.refresh_from_db()
    # Then the seat passes to the next patient, still held once
    assert first_entry.status == "expired"
    assert second_entry.status == "offered" and slot.booked == 1
    assert _sms_to(second) == 1 and _sms_to(patient) == 1
    with pytest.raises(services.Conflict):
        waitlist.waitlist_accept(actor=services.BookingActor.patient(patient), entry=first_entry)
    # And the second patient books the held seat without taking a second one
    booked = waitlist.waitlist_accept(
        actor=services.BookingActor.patient(second), entry=second_entry
    )
    slot.refresh_from_db()
    assert booked.slot_id == slot.pk and slot.booked == 1
    # a second run of the expiry task finds nothing to do
    assert tasks.waitlist_holds_expire.apply().get() == 0


def _principal(community):
    from registry.access import principal_for

    return principal_for(community.users["village_a"])


@pytest.mark.django_db
def test_no_waiting_patient_leaves_the_seat_free(community, schedule, patient):
    slot = make_slot(schedule, local(future_day(), 9))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    services.booking_cancel(actor=services.BookingActor.patient(patient), booking=booking)
    slot.refresh_from_db()
    assert slot.booked == 0 and not NotificationDelivery.objects.exists()


# --- reminders ---


@pytest.mark.django_db
@override_settings(HUIZHEN_REMINDER_OFFSETS_MINUTES=[1440, 120])
def test_reminders_24h_and_2h_sent_once_despite_retries(community, schedule, patient):
    now = timezone.now()
    slot = make_slot(schedule, now + timedelta(hours=30))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    assert reminders.reminders_send_due(now=now) == 0  # 30 h ahead: nothing due yet
    at_23h = slot.starts_at - timedelta(hours=23)
    # the task runs, is retried, and runs again: one SMS
    assert reminders.reminders_send_due(now=at_23h) == 1
    assert reminders.reminders_send_due(now=at_23h) == 0
    assert reminders.reminders_send_due(now=at_23h + timedelta(minutes=5)) == 0
    assert _sms_to(patient) == 1
    at_1h = slot.starts_at - timedelta(hours=1)
    assert reminders.reminders_send_due(now=at_1h) == 1
    assert reminders.reminders_send_due(now=at_1h) == 0
    assert _sms_to(patient) == 2
    assert sorted(
        ReminderSent.objects.filter(booking=booking).values_list("offset_minutes", flat=True)
    ) == [120, 1440]


@pytest.mark.django_db
def test_reminder_task_entry_point_and_cancelled_bookings(community, schedule, patient):
    slot = make_slot(schedule, timezone.now() + timedelta(hours=1))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    Booking.objects.filter(pk=booking.pk).update(created_at=timezone.now() - timedelta(days=2))
    services.booking_cancel(
        actor=services.BookingActor.staff(_principal(community)), booking=booking
    )
    assert tasks.reminders_send.apply().get() == 0
    assert _sms_to(patient) == 0


@pytest.mark.django_db
def test_late_booking_gets_one_reminder_not_two(community, schedule, patient):
    slot = make_slot(schedule, timezone.now() + timedelta(hours=3))
    booking = services.booking_create(
        actor=services.BookingActor.patient(patient), patient=patient, slot_id=slot.external_id
    )
    Booking.objects.filter(pk=booking.pk).update(created_at=timezone.now() - timedelta(days=3))
    at = slot.starts_at - timedelta(minutes=90)
    assert reminders.reminders_send_due(now=at) == 1
    assert _sms_to(patient) == 1
    assert ReminderSent.objects.filter(booking=booking).count() == 2


# --- due list ---


@pytest.mark.django_db
def test_due_list_for_the_village_doctor(community, schedule, patient_factory):
    due = patient_factory(home_organisation=community.village_a, chronic_conditions=["I10"])
    booked = patient_factory(home_organisation=community.village_a, chronic_conditions=["E11"])
    patient_factory(home_organisation=community.village_a, chronic_conditions=[])
    elsewhere = patient_factory(home_organisation=community.village_b, chronic_conditions=["I10"])
    slot = make_slot(schedule, local(future_day(), 9))
    services.booking_create(
        actor=services.BookingActor.patient(booked), patient=booked, slot_id=slot.external_id
    )
    response = community.client("village_a").get(f"{URL}due-list/")
    assert response.status_code == 200
    ids = [row["patient"] for row in response.json()]
    assert ids == [str(due.external_id)]
    assert str(elsewhere.external_id) not in ids
    assert community.client("county_admin").get(f"{URL}due-list/").status_code == 403
