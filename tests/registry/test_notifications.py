import pytest

from registry import sms
from registry.models import NotificationDelivery
from registry.notifications import notify


def test_a_patient_gets_an_sms_and_the_delivery_is_logged_masked(
    community, patient_factory, django_capture_on_commit_callbacks
):
    patient = patient_factory(home_organisation=community.village_a, mobile="13712345678")
    with django_capture_on_commit_callbacks(execute=True):
        notify(patient=patient, category="reminder", title="复诊提醒", body="明天上午9点")
    assert [(m.mobile, m.text) for m in sms.outbox] == [("13712345678", "复诊提醒: 明天上午9点")]
    row = NotificationDelivery.objects.get(channel="sms")
    assert (row.status, row.address, row.attempts) == ("sent", "137****5678", 1)
    assert row.provider_reference.startswith("memory-")


def test_a_staff_member_gets_push_and_sms(community, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify(user=community.users["village_a"], category="x", title="T", body="B")
    statuses = dict(NotificationDelivery.objects.values_list("channel", "status"))
    assert statuses == {"push": "sent", "sms": "sent"}
    assert sms.outbox[0].mobile == "13900000001"


def test_a_failing_gateway_leaves_the_delivery_pending_for_a_retry(
    community, patient_factory, monkeypatch, django_capture_on_commit_callbacks
):
    def down(message):
        raise sms.SmsError("gateway timeout", retryable=True)

    monkeypatch.setattr(sms, "_send_memory", down)
    patient = patient_factory(home_organisation=community.village_a)
    with django_capture_on_commit_callbacks(execute=True):
        notify(patient=patient, category="reminder", title="T", body="B")
    row = NotificationDelivery.objects.get(channel="sms")
    assert row.status == "pending" and "gateway timeout" in row.error
    assert row.attempts >= 1


def test_notify_needs_exactly_one_recipient(community):
    with pytest.raises(ValueError):
        notify(category="x", title="t", body="b")
