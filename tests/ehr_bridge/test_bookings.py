"""Bookings reach the hospital's scheduling system as SIU^S12 and SIU^S15."""

import pytest

from ehr_bridge.models import OutboundMessage
from tests.appointments.conftest import future_day, local, make_slot
from tests.appointments.conftest import patient as patient  # noqa: F401 - fixture
from tests.appointments.conftest import schedule as schedule  # noqa: F401 - fixture
from tests.ehr_bridge.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/appointments/bookings/"


def test_booking_and_cancelling_send_siu(community, schedule, patient, partner, receiver):  # noqa: F811
    rcv = receiver()
    partner.outbound_enabled = True
    partner.outbound_host, partner.outbound_port = "127.0.0.1", rcv.port
    partner.outbound_events = ["SIU^S12", "SIU^S15"]
    partner.save()
    slot = make_slot(schedule, local(future_day(), 9))
    client = community.client("village_a")
    booked = client.post(
        URL, {"patient": str(patient.external_id), "slot": str(slot.external_id)}, format="json"
    )
    assert booked.status_code == 201, booked.json()
    booking_id = booked.json()["id"]
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").count() == 1)
    cancelled = client.post(f"{URL}{booking_id}/cancel/", {"reason": "患者有事"}, format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").count() == 2)
    texts = [raw.decode("utf-8") for raw in rcv.received]
    assert "SIU^S12" in texts[0] and "SIU^S15" in texts[1]
    for text in texts:
        assert booking_id in text and patient.name in text
