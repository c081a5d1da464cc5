import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from registry import events
from registry.models import DomainEvent, EventDelivery


@pytest.fixture
def handlers():
    calls: dict[str, list[str]] = {"flaky": [], "steady": [], "poison": []}
    failures = {"flaky": 2}

    @events.subscribe("test.happened", name="test.flaky")
    def flaky(event):
        calls["flaky"].append(event.payload["n"])
        if failures["flaky"] > 0:
            failures["flaky"] -= 1
            raise RuntimeError("downstream unavailable")

    @events.subscribe("test.happened", name="test.steady")
    def steady(event):
        calls["steady"].append(event.payload["n"])

    @events.subscribe("test.poison", name="test.poison")
    def poison(event):
        calls["poison"].append(event.payload["n"])
        raise ValueError("cannot ever handle this")

    yield calls
    events._subscribers.pop("test.happened", None)
    events._subscribers.pop("test.poison", None)


def _due_now():
    EventDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_delivery_survives_a_failing_handler_and_is_retried(handlers):
    with transaction.atomic():
        events.publish("test.happened", {"n": "1"})
    # Dispatched on commit (tasks run inline): the steady subscriber is done, the flaky one
    # failed and waits with a back-off.
    flaky = EventDelivery.objects.get(subscriber="test.flaky")
    assert EventDelivery.objects.get(subscriber="test.steady").status == "delivered"
    assert (flaky.status, flaky.attempts) == ("pending", 1)
    assert "downstream unavailable" in flaky.last_error
    assert flaky.next_attempt_at > timezone.now()
    assert events.deliver_due() == 0  # not due yet
    _due_now()
    events.deliver_due()
    _due_now()
    assert events.deliver_due() == 1
    flaky.refresh_from_db()
    assert (flaky.status, flaky.attempts) == ("delivered", 3)
    assert handlers["steady"] == ["1"]  # each subscriber handled its copy on its own


@pytest.mark.django_db(transaction=True)
def test_an_event_published_in_a_rolled_back_transaction_is_never_delivered(handlers):
    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish("test.happened", {"n": "2"})
        raise RuntimeError("the caller's work failed")
    assert not DomainEvent.objects.exists()
    assert handlers["steady"] == []


@pytest.mark.django_db(transaction=True)
@override_settings(HUIZHEN_OUTBOX_MAX_ATTEMPTS=3)
def test_a_poison_event_is_parked_after_its_retries_and_can_be_replayed(handlers):
    events.publish("test.poison", {"n": "3"})
    for _ in range(5):
        _due_now()
        events.deliver_due()
    row = EventDelivery.objects.get(subscriber="test.poison")
    assert (row.status, row.attempts) == ("parked", 3)
    assert len(handlers["poison"]) == 3  # parked, not looping
    events.replay(row.id)
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)


@pytest.mark.django_db(transaction=True)
def test_a_row_claimed_by_another_worker_is_skipped(handlers):
    from django.db import connections

    with transaction.atomic():
        events.publish("test.happened", {"n": "4"})
    row = EventDelivery.objects.get(subscriber="test.flaky")
    _due_now()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT id FROM registry_eventdelivery WHERE id = %s FOR UPDATE", [row.id]
            )
            assert events.deliver(row.id) is None  # skipped, not blocked
            cursor.execute("ROLLBACK")
    finally:
        other.close()
    assert events.deliver(row.id) == "pending"  # claimed now: second attempt, still failing
    row.refresh_from_db()
    assert row.attempts == 2
