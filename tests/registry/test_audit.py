import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from registry import audit
from registry.models import AuditEvent, AuditSeal


def _trail(community, patient_factory):
    patient = patient_factory(home_organisation=community.village_a)
    community.client("village_a").get(f"/api/v1/patients/{patient.external_id}/")
    community.client("village_b").get(f"/api/v1/patients/{patient.external_id}/")
    community.client("village_a").get("/api/v1/patients/", {"name": "王"})
    return patient


def test_verify_audit_passes_on_an_untouched_trail(community, patient_factory, capsys):
    _trail(community, patient_factory)
    call_command("verify_audit")
    assert "intact: 3 rows" in capsys.readouterr().out


def test_the_database_refuses_updates_and_deletes_of_audit_rows(community, patient_factory):
    _trail(community, patient_factory)
    row = AuditEvent.objects.first()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=row.pk).update(outcome="success")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=row.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE registry_auditevent")
    assert AuditEvent.objects.count() == 3


def _bypass_triggers(sql: str, params: list) -> None:
    # A superuser can switch triggers off; the hash chain still shows what was done.
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_an_altered_row_is_reported_by_its_id(community, patient_factory, capsys):
    _trail(community, patient_factory)
    audit.seal()  # what the sealer does every few seconds
    denied = AuditEvent.objects.get(outcome="denied")
    _bypass_triggers(
        "UPDATE registry_auditevent SET outcome = 'success' WHERE id = %s", [denied.pk]
    )
    with pytest.raises(CommandError, match="1 problem"):
        call_command("verify_audit")
    assert f"audit row {denied.pk}: content does not match" in capsys.readouterr().err


def test_a_deleted_row_is_reported_by_its_id(community, patient_factory):
    _trail(community, patient_factory)
    audit.seal()
    first, second, third = AuditEvent.objects.order_by("id")
    _bypass_triggers("DELETE FROM registry_auditevent WHERE id = %s", [second.pk])
    checked, breaks = audit.verify_chain()
    assert checked == 3
    assert [(b.row_id, b.reason) for b in breaks] == [(second.pk, "row removed from the trail")]


def test_a_deleted_row_and_its_link_break_the_link_of_the_next(community, patient_factory):
    _trail(community, patient_factory)
    audit.seal()
    first, second, third = AuditEvent.objects.order_by("id")
    _bypass_triggers("DELETE FROM registry_auditseal WHERE event_id = %s", [second.pk])
    _bypass_triggers("DELETE FROM registry_auditevent WHERE id = %s", [second.pk])
    checked, breaks = audit.verify_chain()
    assert checked == 2
    assert [b.row_id for b in breaks] == [third.pk]


def test_a_row_removed_before_it_was_sealed_is_reported(community, patient_factory):
    _trail(community, patient_factory)
    last = AuditEvent.objects.order_by("id").last()
    _bypass_triggers("DELETE FROM registry_auditevent WHERE id = %s", [last.pk])
    checked, breaks = audit.verify_chain()
    assert checked == 2
    assert [(b.row_id, b.reason) for b in breaks] == [
        (last.pk, "row removed from the trail before it was sealed")
    ]


def test_a_row_slipped_in_behind_the_trail_is_reported(community, patient_factory):
    _trail(community, patient_factory)
    audit.seal()
    row = AuditEvent.objects.order_by("id").first()
    row.pk = None
    row.save()  # an INSERT that skips audit.record, so it is never marked for sealing
    checked, breaks = audit.verify_chain()
    assert checked == 3
    assert [(b.row_id, b.reason) for b in breaks] == [
        (row.pk, "row not in the chain (inserted outside the trail)")
    ]


def test_the_seal_table_is_append_only_too(community, patient_factory):
    _trail(community, patient_factory)
    audit.seal()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditSeal.objects.update(hash="0" * 64)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditSeal.objects.all().delete()
    assert AuditSeal.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_writers_do_not_wait_for_each_other_and_the_chain_keeps_every_row(
    community, patient_factory
):
    """Two transactions audit at once: the one that started first commits last, yet
    neither waits and the sealed chain holds both rows in the order they committed."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    audit.seal()
    started, finish_first = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                audit.record(actor=audit.Actor.system("slow"), action="test.slow")
                started.set()
                assert finish_first.wait(10)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(slow_writer)
        assert started.wait(10)
        fast_began = time.monotonic()
        audit.record(actor=audit.Actor.system("fast"), action="test.fast")
        assert time.monotonic() - fast_began < 2  # no shared lock held to the slow commit
        assert audit.seal() == 1  # only committed rows are sealed
        finish_first.set()
        slow.result(10)
    assert audit.seal() == 1
    actions = dict(AuditEvent.objects.values_list("id", "action"))
    order = [
        actions[i] for i in AuditSeal.objects.order_by("seq").values_list("event_id", flat=True)
    ]
    assert order[-2:] == ["test.fast", "test.slow"]
    assert audit.verify_chain()[1] == []


def test_audit_rows_carry_who_what_where_and_no_patient_details(community, patient_factory):
    patient = _trail(community, patient_factory)
    row = AuditEvent.objects.get(actor_username="village_a", action="patient.read")
    assert row.actor_role == "village_doctor"
    assert row.organisation_id == community.village_a.pk
    assert row.patient_id == patient.external_id
    assert row.client_address == "127.0.0.1"
    assert row.occurred_at.utcoffset().total_seconds() == 0 or row.occurred_at.tzinfo
    search = AuditEvent.objects.get(action="patient.search")
    assert search.detail == {"criteria": ["name"]}  # which criteria, never their values
    flat = str(list(AuditEvent.objects.values()))
    assert patient.name not in flat and patient.id_number not in flat


def test_org_admins_search_their_own_trail_only(community, patient_factory):
    patient = _trail(community, patient_factory)
    mine = community.client("county_admin").get(
        "/api/v1/audit/", {"patient": str(patient.external_id)}
    )
    assert mine.status_code == 200
    assert {r["actor_username"] for r in mine.json()["results"]} == {"village_a", "village_b"}
    theirs = community.client("other_admin").get(
        "/api/v1/audit/", {"patient": str(patient.external_id)}
    )
    assert theirs.status_code == 200
    assert theirs.json()["results"] == []
    refused = community.client("village_a").get("/api/v1/audit/")
    assert refused.status_code == 403
