"""A refusal inside a write is audited even though the write's transaction rolls back."""

import pytest

from registry.models import AuditEvent
from tests.consult.conftest import act, submitted


@pytest.fixture
def patient(community):
    from tests.consult.conftest import with_consent
    from tests.factories import PatientFactory

    p = PatientFactory(home_organisation=community.village_a)
    with_consent(p, community.users["village_a"], community.village_a)
    return p


def test_a_refused_write_from_another_organisation_is_in_the_audit_trail(community, patient):
    consult = submitted(community, patient)
    before = AuditEvent.objects.filter(outcome="denied").count()
    response = act(community, "other_doctor", consult["id"], "accept")
    assert response.status_code == 404
    denied = AuditEvent.objects.filter(outcome="denied").order_by("id")
    assert denied.count() == before + 1
    row = denied.last()
    assert row.actor_username == "other_doctor"
    assert row.action == "consult.accept"


def test_a_refused_write_is_audited_once_when_its_transaction_commits(community, patient):
    from django.db import transaction

    from registry import audit
    from registry.models import AuditOutcome

    with transaction.atomic():
        audit.record(actor=audit.Actor.system("t"), action="t.denied", outcome=AuditOutcome.DENIED)
    audit.flush_deferred()
    assert AuditEvent.objects.filter(action="t.denied").count() == 1
