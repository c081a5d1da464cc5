"""SIU^S12-S15 from the HIS book, move and cancel Huizhen bookings (over MLLP)."""

from __future__ import annotations

import time

import pytest

from appointments.models import Booking, Schedule, Slot
from ehr_bridge.models import Hl7Partner, InboundAppointment, InboundStatus, OutboundMessage
from registry.models import Notification
from tests.appointments.conftest import future_day, local, make_slot
from tests.ehr_bridge.conftest import wait_for
from tests.ehr_bridge.inbound_samples import admit, send, siu

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clinic(community, partner) -> Schedule:
    """The county hospital's general clinic, mapped from the HIS resource MZ-QK01."""
    schedule = Schedule.objects.create(
        organisation=community.county, name="全科门诊", department="全科"
    )
    partner.schedule_map = {"MZ-QK01": str(schedule.external_id)}
    partner.save()
    return schedule


@pytest.fixture
def his(start_listener, partner, clinic):
    return start_listener()


def _slot(clinic: Schedule, hour: int, *, capacity: int = 1) -> Slot:
    return make_slot(clinic, local(future_day(), hour), capacity=capacity, visit_type="in_person")


def test_s12_books_the_mapped_slot(his, clinic, partner):
    patient = admit(his)
    slot = _slot(clinic, 9)
    row = send(his, siu("SIU-1", start=slot.starts_at))
    assert row.status == InboundStatus.PROCESSED, row.error
    booking = Booking.objects.get()
    assert (booking.patient, booking.slot, booking.status) == (patient, slot, "confirmed")
    assert booking.channel == "his" and booking.note == "高血压复诊"
    assert booking.organisation == clinic.organisation
    mapped = InboundAppointment.objects.get()
    assert mapped.filler_appointment_id == "YY20240301001" and mapped.booking == booking
    slot.refresh_from_db()
    assert slot.booked == 1


def test_a_repeated_s12_books_once(his, clinic):
    admit(his)
    slot = _slot(clinic, 9, capacity=3)
    send(his, siu("SIU-1", start=slot.starts_at))
    again = send(his, siu("SIU-1-AGAIN", start=slot.starts_at))
    assert again.status == InboundStatus.PROCESSED
    assert Booking.objects.count() == 1
    slot.refresh_from_db()
    assert slot.booked == 1


def test_a_full_slot_is_never_overbooked_the_message_is_parked_and_alerts(his, clinic, community):
    admit(his)
    admit(his, mrn="H0002", family="张", given="桂英")
    slot = _slot(clinic, 9, capacity=1)
    send(his, siu("SIU-1", start=slot.starts_at))
    row = send(his, siu("SIU-2", start=slot.starts_at, filler="YY2", mrn="H0002", family="张"))
    assert row.status == InboundStatus.PARKED and "SlotTaken" in row.error
    assert Booking.objects.count() == 1
    slot.refresh_from_db()
    assert slot.booked == 1
    assert Notification.objects.filter(
        user=community.users["county_admin"], category="hl7_parked"
    ).exists()


def test_s13_and_s14_move_the_booking(his, clinic):
    admit(his)
    nine, ten, eleven = _slot(clinic, 9), _slot(clinic, 10), _slot(clinic, 11)
    send(his, siu("SIU-1", start=nine.starts_at))
    row = send(his, siu("SIU-2", trigger="S13", start=ten.starts_at))
    assert row.status == InboundStatus.PROCESSED, row.error
    moved = InboundAppointment.objects.get().booking
    assert moved.slot == ten and moved.status == "confirmed"
    assert moved.rescheduled_from.status == "cancelled"
    row = send(his, siu("SIU-3", trigger="S14", start=eleven.starts_at))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert InboundAppointment.objects.get().booking.slot == eleven
    booked = dict(Slot.objects.values_list("pk", "booked"))
    assert booked == {nine.pk: 0, ten.pk: 0, eleven.pk: 1}
    same = send(his, siu("SIU-4", trigger="S14", start=eleven.starts_at))
    assert same.status == InboundStatus.PROCESSED
    assert Booking.objects.filter(status="confirmed").count() == 1


def test_s15_cancels_and_gives_the_seat_back(his, clinic):
    admit(his)
    slot = _slot(clinic, 9)
    send(his, siu("SIU-1", start=slot.starts_at))
    row = send(his, siu("SIU-2", trigger="S15", start=slot.starts_at))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert Booking.objects.get().status == "cancelled"
    slot.refresh_from_db()
    assert slot.booked == 0
    assert send(his, siu("SIU-3", trigger="S15", start=slot.starts_at)).status == "processed"


def test_unmapped_resource_or_missing_slot_is_parked(his, clinic):
    admit(his)
    slot = _slot(clinic, 9)
    row = send(his, siu("SIU-1", start=slot.starts_at, resource="UNKNOWN"))
    assert row.status == InboundStatus.PARKED and "schedule map" in row.error
    row = send(his, siu("SIU-2", start=local(future_day(), 15), filler="YY9"))
    assert row.status == InboundStatus.PARKED and "no slot" in row.error
    assert not Booking.objects.exists()


def test_siu_cancel_of_an_unknown_appointment_is_parked(his, clinic):
    admit(his)
    row = send(his, siu("SIU-1", trigger="S15", start=local(future_day(), 9)))
    assert row.status == InboundStatus.PARKED and "YY20240301001" in row.error


def test_bookings_from_the_his_are_not_echoed_back_to_it(his, clinic, partner, community, receiver):
    rcv = receiver()
    partner.outbound_enabled = True
    partner.outbound_host, partner.outbound_port = "127.0.0.1", rcv.port
    partner.outbound_events = ["SIU^S12", "SIU^S15"]
    partner.save()
    other = Hl7Partner.objects.create(
        name="体检系统",
        organisation=community.county,
        sending_application="TJ_SYS",
        sending_facility="COUNTY_HOSP",
        outbound_enabled=True,
        outbound_host="127.0.0.1",
        outbound_port=rcv.port,
        outbound_events=["SIU^S12", "SIU^S15"],
    )
    admit(his)
    slot = _slot(clinic, 9)
    send(his, siu("SIU-1", start=slot.starts_at))
    send(his, siu("SIU-2", trigger="S15", start=slot.starts_at))
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").count() == 2)
    time.sleep(0.5)
    assert set(OutboundMessage.objects.values_list("partner", flat=True)) == {other.pk}
    assert not OutboundMessage.objects.filter(partner=partner).exists()


def test_a_change_naming_another_patient_is_parked(his, clinic):
    admit(his)
    admit(his, mrn="H0002", family="张", given="桂英")
    nine, ten = _slot(clinic, 9), _slot(clinic, 10)
    send(his, siu("SIU-1", start=nine.starts_at))
    row = send(his, siu("SIU-2", trigger="S14", start=ten.starts_at, mrn="H0002", family="张"))
    assert row.status == InboundStatus.PARKED and "another patient" in row.error
    assert Booking.objects.get().slot == nine
