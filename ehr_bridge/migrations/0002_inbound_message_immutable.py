"""Keep what was received and what was answered unchangeable.

The bytes received, the sender and control ID, the hash and the acknowledgement sent are
written once, before the acknowledgement goes out. A trigger refuses any later change to
them (processing changes only the status columns). PostgreSQL and SQLite alike.
"""

from django.db import migrations

COLUMNS = [
    "raw",
    "sha256",
    "sending_application",
    "sending_facility",
    "control_id",
    "ack",
    "ack_code",
    "received_at",
    "text",
]

PG_FORWARD = """
CREATE OR REPLACE FUNCTION ehr_bridge_inbound_refuse_change() RETURNS trigger AS $$
BEGIN
    IF {condition} THEN
        RAISE EXCEPTION USING
            MESSAGE = 'an inbound HL7 message keeps what was received and answered',
            ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ehr_bridge_inboundmessage_immutable
    BEFORE UPDATE ON ehr_bridge_inboundmessage
    FOR EACH ROW EXECUTE FUNCTION ehr_bridge_inbound_refuse_change();
""".format(condition=" OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in COLUMNS))

PG_REVERSE = """
DROP TRIGGER IF EXISTS ehr_bridge_inboundmessage_immutable ON ehr_bridge_inboundmessage;
DROP FUNCTION IF EXISTS ehr_bridge_inbound_refuse_change();
"""

SQLITE_FORWARD = """
CREATE TRIGGER ehr_bridge_inboundmessage_immutable
BEFORE UPDATE OF {columns} ON ehr_bridge_inboundmessage
WHEN {condition}
BEGIN SELECT RAISE(ABORT, 'an inbound HL7 message keeps what was received and answered'); END;
""".format(
    columns=", ".join(COLUMNS),
    condition=" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in COLUMNS),
)

SQLITE_REVERSE = "DROP TRIGGER IF EXISTS ehr_bridge_inboundmessage_immutable;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("ehr_bridge", "0001_initial")]

    operations = [migrations.RunPython(forward, reverse)]
