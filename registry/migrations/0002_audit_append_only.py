"""Make the audit trail append-only at the database level.

PostgreSQL: a trigger refuses UPDATE, DELETE and TRUNCATE on the audit table, and the
application's role loses those privileges. SQLite (embedded mode): triggers refuse UPDATE
and DELETE. The hash chain (``manage.py verify_audit``) detects what a superuser changes anyway.
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION registry_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'the audit trail is append-only (' || TG_OP || ' refused)',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_auditevent_no_update_delete
    BEFORE UPDATE OR DELETE ON registry_auditevent
    FOR EACH ROW EXECUTE FUNCTION registry_audit_refuse_change();

CREATE TRIGGER registry_auditevent_no_truncate
    BEFORE TRUNCATE ON registry_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION registry_audit_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON registry_auditevent FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON registry_auditevent FROM CURRENT_USER;
"""

PG_REVERSE = """
GRANT UPDATE, DELETE, TRUNCATE ON registry_auditevent TO CURRENT_USER;
DROP TRIGGER IF EXISTS registry_auditevent_no_truncate ON registry_auditevent;
DROP TRIGGER IF EXISTS registry_auditevent_no_update_delete ON registry_auditevent;
DROP FUNCTION IF EXISTS registry_audit_refuse_change();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER registry_auditevent_no_update BEFORE UPDATE ON registry_auditevent
       BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only (UPDATE refused)'); END;""",
    """CREATE TRIGGER registry_auditevent_no_delete BEFORE DELETE ON registry_auditevent
       BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only (DELETE refused)'); END;""",
]

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS registry_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS registry_auditevent_no_delete;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]

    operations = [migrations.RunPython(forward, reverse, elidable=False)]
