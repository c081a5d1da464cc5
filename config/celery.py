"""The Celery application. Periodic tasks are declared here, in one place."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("huizhen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules inside app sub-packages.
app.autodiscover_tasks(["imaging.pathology"])

app.conf.beat_schedule = {
    "audit-seal": {"task": "registry.tasks.audit_seal", "schedule": 5.0},
    "outbox-sweep": {
        "task": "registry.tasks.outbox_sweep",
        "schedule": 30.0,
    },
    "hl7-inbound-sweep": {
        "task": "ehr_bridge.tasks.inbound_sweep",
        "schedule": 30.0,
    },
    "hl7-outbound-sweep": {"task": "ehr_bridge.tasks.outbound_sweep", "schedule": 30.0},
    "pacs-report-sweep": {"task": "ehr_bridge.tasks.pacs_report_sweep", "schedule": 60.0},
    "consult-sla-sweep": {"task": "consult.tasks.sla_sweep", "schedule": 60.0},
    "consult-critical-value-sweep": {
        "task": "consult.tasks.critical_value_sweep",
        "schedule": 60.0,
    },
    "consult-recordings-purge": {
        "task": "consult.tasks.recordings_purge",
        "schedule": crontab(minute=40),
    },
    "appointments-slots-generate": {
        "task": "appointments.tasks.slots_generate_all",
        "schedule": crontab(hour=2, minute=15),
    },
    "appointments-reminders": {"task": "appointments.tasks.reminders_send", "schedule": 300.0},
    "appointments-waitlist-holds": {
        "task": "appointments.tasks.waitlist_holds_expire",
        "schedule": 60.0,
    },
    "appointments-idempotency-purge": {
        "task": "appointments.tasks.idempotency_purge",
        "schedule": crontab(hour=3, minute=0),
    },
    "appointments-referrals-check": {
        "task": "appointments.tasks.referrals_check",
        "schedule": crontab(hour=7, minute=0),
    },
    "appointments-contract-renewal": {
        "task": "appointments.tasks.contracts_remind_renewal",
        "schedule": crontab(hour=9, minute=0),
    },
}
