"""Move the audit chain's links out of the audit rows into their own append-only table.

Rows are now written without a shared lock and sealed into the chain afterwards. Existing
links are carried over unchanged (same hashes, in row order), the link columns are dropped
from the rows, and the seal table is made append-only like the rows themselves. SQLite
rebuilds a table to drop a unique column, which loses its triggers; they are made again.
"""

from datetime import UTC, datetime

from django.db import migrations, models

PG_SEAL_APPEND_ONLY = """
CREATE TRIGGER registry_auditseal_no_update_delete
    BEFORE UPDATE OR DELETE ON registry_auditseal
    FOR EACH ROW EXECUTE FUNCTION registry_audit_refuse_change();
CREATE TRIGGER registry_auditseal_no_truncate
    BEFORE TRUNCATE ON registry_auditseal
    FOR EACH STATEMENT EXECUTE FUNCTION registry_audit_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON registry_auditseal FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON registry_auditseal FROM CURRENT_USER;
"""

PG_SEAL_REVERSE = """
GRANT UPDATE, DELETE, TRUNCATE ON registry_auditseal TO CURRENT_USER;
DROP TRIGGER IF EXISTS registry_auditseal_no_truncate ON registry_auditseal;
DROP TRIGGER IF EXISTS registry_auditseal_no_update_delete ON registry_auditseal;
"""


def _sqlite_triggers(table: str) -> list[str]:
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only (UPDATE refused)'); END;""",
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only (DELETE refused)'); END;""",
    ]


def carry_links_over(apps, schema_editor):
    event_model = apps.get_model("registry", "AuditEvent")
    seal_model = apps.get_model("registry", "AuditSeal")
    now = datetime.now(UTC)
    batch = []
    rows = event_model.objects.order_by("id").values_list("id", "prev_hash", "hash")
    for seq, (event_id, prev_hash, digest) in enumerate(rows.iterator(), start=1):
        batch.append(
            seal_model(seq=seq, event_id=event_id, prev_hash=prev_hash, hash=digest, sealed_at=now)
        )
        if len(batch) >= 5000:
            seal_model.objects.bulk_create(batch)
            batch = []
    seal_model.objects.bulk_create(batch)


def make_append_only(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_SEAL_APPEND_ONLY)
    elif vendor == "sqlite":
        for table in ("registry_auditevent", "registry_auditseal"):
            for statement in _sqlite_triggers(table):
                schema_editor.execute(statement)


def undo_append_only(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_SEAL_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS registry_auditseal_no_update;")
        schema_editor.execute("DROP TRIGGER IF EXISTS registry_auditseal_no_delete;")


class Migration(migrations.Migration):
    dependencies = [("registry", "0002_audit_append_only")]

    operations = [
        migrations.CreateModel(
            name="AuditPending",
            fields=[("event_id", models.BigIntegerField(primary_key=True, serialize=False))],
        ),
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                ("event_id", models.BigIntegerField(unique=True)),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64, unique=True)),
                ("sealed_at", models.DateTimeField()),
            ],
            options={"ordering": ["seq"]},
        ),
        migrations.RunPython(carry_links_over, migrations.RunPython.noop, elidable=False),
        migrations.RemoveField(model_name="auditevent", name="hash"),
        migrations.RemoveField(model_name="auditevent", name="prev_hash"),
        migrations.RunPython(make_append_only, undo_append_only, elidable=False),
    ]
