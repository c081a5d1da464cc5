import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from registry import audit
from registry.models import AuditEvent


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
    denied = AuditEvent.objects.get(outcome="denied")
    _bypass_triggers(
        "UPDATE registry_auditevent SET outcome = 'success' WHERE id = %s", [denied.pk]
    )
    with pytest.raises(CommandError, match="1 problem"):
        call_command("verify_audit")
    assert f"audit row {denied.pk}: content does not match" in capsys.readouterr().err


def test_a_deleted_row_breaks_the_link_of_the_next(community, patient_factory):
    _trail(community, patient_factory)
    first, second, third = AuditEvent.objects.order_by("id")
    _bypass_triggers("DELETE FROM registry_auditevent WHERE id = %s", [second.pk])
    checked, breaks = audit.verify_chain()
    assert checked == 2
    assert [b.row_id for b in breaks] == [third.pk]


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
