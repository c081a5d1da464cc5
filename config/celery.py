"""The Celery application. Periodic tasks are declared here, in one place."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("huizhen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "outbox-sweep": {
        "task": "registry.tasks.outbox_sweep",
        "schedule": 30.0,
    },
    "hl7-inbound-sweep": {
        "task": "ehr_bridge.tasks.inbound_sweep",
        "schedule": 30.0,
    },
}
