"""The database enforces capacity: 50 clients racing for 10 single-place slots."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import F
from rest_framework.test import APIClient

from appointments.models import Booking, Slot
from tests.appointments.conftest import future_day, local, make_slot

CLIENTS = 50
SLOTS = 10


def _race(user, patients, slots) -> list[tuple[int, str]]:
    barrier = threading.Barrier(len(patients))
    results: list[tuple[int, str]] = [(0, "")] * len(patients)

    def client_thread(i: int) -> None:
        try:
            client = APIClient()
            client.force_authenticate(user)
            body = {
                "patient": str(patients[i].external_id),
                "slot": str(slots[i % len(slots)].external_id),
            }
            barrier.wait(timeout=30)
            response = client.post("/api/v1/appointments/bookings/", body, format="json")
            results[i] = (response.status_code, response.json().get("code", ""))
        finally:
            connection.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(len(patients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_fifty_clients_ten_slots_exactly_ten_bookings(community, schedule, patient_factory):
    user = community.users["village_a"]
    patients = [patient_factory(home_organisation=community.village_a) for _ in range(CLIENTS)]
    for round_no in range(3):
        day = future_day(3 + round_no)
        slots = [make_slot(schedule, local(day, 8 + i)) for i in range(SLOTS)]
        # When 50 clients (5 per slot) book at the same moment
        results = _race(user, patients, slots)
        # Then exactly one per slot succeeds and every other gets a clear "slot taken"
        outcomes = Counter(results)
        assert outcomes == {(201, ""): SLOTS, (409, "slot_taken"): CLIENTS - SLOTS}, outcomes
        assert Booking.objects.filter(slot__in=slots, status="confirmed").count() == SLOTS
        for slot in slots:
            slot.refresh_from_db()
            assert slot.booked == 1
            assert slot.bookings.count() == 1
    assert not Slot.objects.filter(booked__gt=F("capacity")).exists()
