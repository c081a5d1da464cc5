"""Patient portal: SMS one-time codes (expiry, lockout, rate limits) and the pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from appointments.models import Booking, OtpChallenge, Slot
from registry import sms
from registry.models import AuditEvent
from tests.appointments.conftest import future_day, local, make_slot


def _code() -> str:
    assert sms.outbox, "no SMS was sent"
    return re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)


def _request_code(client: Client, mobile: str, addr: str = "10.0.0.1"):
    return client.post("/portal/login/", {"mobile": mobile, "action": "request"}, REMOTE_ADDR=addr)


def _verify(client: Client, mobile: str, code: str, addr: str = "10.0.0.1"):
    return client.post(
        "/portal/login/", {"mobile": mobile, "code": code, "action": "verify"}, REMOTE_ADDR=addr
    )


def _signed_in(patient) -> Client:
    client = Client()
    assert _request_code(client, patient.mobile).status_code == 200
    response = _verify(client, patient.mobile, _code())
    assert response.status_code == 302 and response["Location"] == "/portal/"
    return client


@pytest.mark.django_db
def test_sign_in_with_sms_code_and_see_zh_hans_home(patient, schedule):
    client = _signed_in(patient)
    # the code is stored only as a hash
    challenge = OtpChallenge.objects.get(mobile=patient.mobile)
    assert challenge.used_at is not None and _code() not in challenge.code_hash
    response = client.get("/portal/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "即将到来的就诊" in html or "Upcoming visits" in html  # translated once compiled
    assert patient.name in html
    masked = f"patient:{patient.mobile[:3]}****{patient.mobile[-4:]}"
    assert AuditEvent.objects.filter(
        actor_username=masked, action="portal.home.read", patient_id=patient.external_id
    ).exists()
    assert AuditEvent.objects.filter(actor_username=masked, action="portal.sign_in").exists()


@pytest.mark.django_db
def test_unknown_number_gets_the_same_answer_and_no_sms(community):
    response = _request_code(Client(), "13912345678")
    assert response.status_code == 200 and sms.outbox == []
    assert not OtpChallenge.objects.exists()


@pytest.mark.django_db
def test_code_expires_after_five_minutes(patient):
    client = Client()
    _request_code(client, patient.mobile)
    OtpChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _verify(client, patient.mobile, _code())
    assert response.status_code == 400
    assert client.get("/portal/").status_code == 302


@pytest.mark.django_db
def test_five_wrong_codes_lock_the_number(patient):
    client = Client()
    _request_code(client, patient.mobile)
    good = _code()
    wrong = "000000" if good != "000000" else "111111"
    statuses = [_verify(client, patient.mobile, wrong).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 429]
    # even the right code is refused now, and no new code can be asked for
    assert _verify(client, patient.mobile, good).status_code == 429
    sms.outbox.clear()
    OtpChallenge.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    from django.core.cache import cache

    cache.delete(f"portal-otp:gap:{patient.mobile}")
    assert _request_code(client, patient.mobile).status_code == 429
    assert sms.outbox == []
    assert AuditEvent.objects.filter(action="portal.sign_in", outcome="denied").count() == 6


@pytest.mark.django_db
@override_settings(HUIZHEN_PORTAL_OTP_RESEND_SECONDS=0, HUIZHEN_PORTAL_OTP_PER_NUMBER_PER_HOUR=3)
def test_rate_limit_per_number(patient):
    client = Client()
    statuses = [_request_code(client, patient.mobile, f"10.0.0.{i}").status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert len(sms.outbox) == 3


@pytest.mark.django_db
@override_settings(HUIZHEN_PORTAL_OTP_PER_ADDRESS_PER_HOUR=4)
def test_rate_limit_per_address(community, patient_factory):
    patients = [patient_factory(home_organisation=community.village_a) for _ in range(6)]
    client = Client()
    statuses = [_request_code(client, p.mobile, "10.9.9.9").status_code for p in patients]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert _request_code(client, patients[5].mobile, "10.9.9.10").status_code == 200


@pytest.mark.django_db
def test_resend_too_soon(patient):
    client = Client()
    assert _request_code(client, patient.mobile).status_code == 200
    assert _request_code(client, patient.mobile).status_code == 429


@pytest.mark.django_db
@override_settings(HUIZHEN_PORTAL_IDLE_SECONDS=60)
def test_portal_session_idle_timeout(patient):
    client = _signed_in(patient)
    session = client.session
    data = session["huizhen_portal"]
    data["seen"] -= 120
    session["huizhen_portal"] = data
    session.save()
    assert client.get("/portal/").status_code == 302


@pytest.mark.django_db
def test_staff_login_is_not_a_portal_session(community):
    client = Client()
    client.force_login(community.users["village_a"])
    assert client.get("/portal/").status_code == 302


@pytest.mark.django_db
def test_book_cancel_and_reschedule_in_the_portal(patient, schedule, community):
    first = make_slot(schedule, local(future_day(), 9))
    second = make_slot(schedule, local(future_day(4), 9))
    client = _signed_in(patient)
    clinics = client.get("/portal/book/").content.decode()
    assert community.township.name in clinics
    page = client.get(f"/portal/book/?clinic={community.township.external_id}")
    assert str(first.external_id) in page.content.decode()
    # book; a double submit of the same form books once
    form = {"slot": str(first.external_id), "idem": "form-1"}
    assert client.post("/portal/book/", form).status_code == 302
    assert client.post("/portal/book/", form).status_code == 302
    booking = Booking.objects.get(patient=patient)
    assert booking.channel == "portal" and booking.status == "confirmed"
    home = client.get("/portal/").content.decode()
    assert str(booking.external_id) in home
    # reschedule
    response = client.post(
        f"/portal/bookings/{booking.external_id}/reschedule/",
        {"slot": str(second.external_id), "idem": "form-2"},
    )
    assert response.status_code == 302
    moved = Booking.objects.get(patient=patient, status="confirmed")
    assert moved.slot_id == second.pk
    # calendar file
    ics = client.get(f"/portal/bookings/{moved.external_id}/ics/")
    assert ics.status_code == 200 and b"BEGIN:VCALENDAR" in ics.content
    # cancel: the slot is free again
    client.post(f"/portal/bookings/{moved.external_id}/cancel/", {"idem": "form-3"})
    second.refresh_from_db()
    assert second.booked == 0
    assert not Booking.objects.filter(patient=patient, status="confirmed").exists()
    assert Slot.objects.get(pk=first.pk).booked == 0


@pytest.mark.django_db
def test_portal_cannot_touch_someone_elses_booking(patient, schedule, community, patient_factory):
    other = patient_factory(home_organisation=community.village_a)
    slot = make_slot(schedule, local(future_day(), 9))
    from appointments import services

    theirs = services.booking_create(
        actor=services.BookingActor.patient(other), patient=other, slot_id=slot.external_id
    )
    client = _signed_in(patient)
    response = client.post(f"/portal/bookings/{theirs.external_id}/cancel/", {"idem": "x"})
    assert response.status_code == 404
    assert client.get(f"/portal/bookings/{theirs.external_id}/ics/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "confirmed"
    assert AuditEvent.objects.filter(action="booking.cancel", outcome="denied").exists()
