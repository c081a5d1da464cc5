"""Operator side: the deploy check, the sweep and the admin replay action."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from ehr_bridge import checks, services, tasks
from ehr_bridge.models import InboundMessage, InboundStatus
from registry.models import PatientIdentifier
from tests.ehr_bridge.conftest import adt


def test_deploy_check_warns_while_any_sender_is_accepted(settings):
    settings.HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER = False
    assert [w.id for w in checks.mllp_known_senders(None)] == ["huizhen.W101"]
    settings.HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER = True
    assert checks.mllp_known_senders(None) == []


def test_sweep_processes_a_message_whose_dispatch_was_lost(partner):
    message_id = services.inbound_receive(raw=adt("S-1", mrn="SWEEP").encode()).message_id
    assert tasks.inbound_sweep() == 0  # too young: its own dispatch is still expected
    InboundMessage.objects.filter(id=message_id).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2)
    )
    assert tasks.inbound_sweep() == 1
    assert InboundMessage.objects.get(id=message_id).status == InboundStatus.PROCESSED
    assert PatientIdentifier.objects.filter(value="SWEEP").exists()


def test_admin_replay_action_requeues_a_parked_message(
    partner, client, django_user_model, django_capture_on_commit_callbacks
):
    message_id = services.inbound_receive(raw=adt("A-1", mrn="ADM", birth="", sex="U").encode())
    message_id = message_id.message_id
    services.inbound_process(message_id=message_id)
    assert InboundMessage.objects.get(id=message_id).status == InboundStatus.PARKED
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123456")
    client.force_login(admin)
    url = reverse("admin:ehr_bridge_inboundmessage_changelist")
    assert client.get(url).status_code == 200
    assert (
        client.get(reverse("admin:ehr_bridge_inboundmessage_change", args=[message_id])).status_code
        == 200
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "replay", "_selected_action": [message_id]})
    assert response.status_code == 302
    row = InboundMessage.objects.get(id=message_id)
    # replayed, and (the data still being incomplete) parked again after one more attempt
    assert list(row.events.values_list("kind", flat=True))[-3:] == ["parked", "replayed", "parked"]
    assert row.events.get(kind="replayed").actor == admin
