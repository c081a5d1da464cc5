"""The outbox through a real Celery worker and the Redis broker, as in production."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection, transaction

from config.celery import app
from imaging.models import Study
from registry import events
from registry.models import EventDelivery, Notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(community):
    queue = f"huizhen-test-{uuid.uuid4().hex[:8]}"
    database = connection.settings_dict["NAME"]
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": base_url.rsplit("/", 1)[0] + "/" + database,
        "HUIZHEN_CELERY_QUEUE": queue,
        "HUIZHEN_TEST_CELERY_EAGER": "false",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    try:
        yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        process.terminate()
        process.wait(20)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def _wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_an_event_is_delivered_by_the_worker_after_commit(worker, community):
    study = Study.objects.create(
        study_instance_uid="1.2.3.4.5.6", organisation=community.village_a, modalities=["CT"]
    )
    with transaction.atomic():
        events.publish(
            "imaging.study_arrived",
            {"study": str(study.external_id), "organisation": community.village_a.pk},
        )
    delivered = EventDelivery.objects.filter(
        subscriber="imaging.notify_new_study", status="delivered"
    )
    assert _wait_for(delivered.exists), (
        worker.stderr.read1().decode() if worker.poll() is not None else "worker still running"
    )
    assert Notification.objects.filter(
        category="imaging.study_arrived", user=community.users["village_a"]
    ).exists()
