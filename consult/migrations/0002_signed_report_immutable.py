"""A signed report never changes: the database refuses UPDATE and DELETE of a signed row
(PostgreSQL trigger; SQLite triggers in the embedded mode). An amendment is a new row."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION consult_report_refuse_signed_change() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'signed' THEN
        RAISE EXCEPTION USING
            MESSAGE = 'a signed report is immutable (' || TG_OP || ' refused)',
            ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER consult_report_signed_immutable
    BEFORE UPDATE OR DELETE ON consult_report
    FOR EACH ROW EXECUTE FUNCTION consult_report_refuse_signed_change();
"""

PG_REVERSE = """
DROP TRIGGER IF EXISTS consult_report_signed_immutable ON consult_report;
DROP FUNCTION IF EXISTS consult_report_refuse_signed_change();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER consult_report_signed_no_update BEFORE UPDATE ON consult_report
       WHEN OLD.status = 'signed'
       BEGIN SELECT RAISE(ABORT, 'a signed report is immutable (UPDATE refused)'); END;""",
    """CREATE TRIGGER consult_report_signed_no_delete BEFORE DELETE ON consult_report
       WHEN OLD.status = 'signed'
       BEGIN SELECT RAISE(ABORT, 'a signed report is immutable (DELETE refused)'); END;""",
]

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS consult_report_signed_no_update;",
    "DROP TRIGGER IF EXISTS consult_report_signed_no_delete;",
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
    dependencies = [("consult", "0001_initial")]

    operations = [migrations.RunPython(forward, reverse)]
