"""Project checks for what Django's deploy checks cannot see."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def websocket_origin_validation(app_configs: Any, **kwargs: Any) -> list[Warning]:
    from channels.security.websocket import OriginValidator

    from config.asgi import application

    router = getattr(application, "application_mapping", {}).get("websocket")
    if not isinstance(router, OriginValidator):
        return [
            Warning(
                "WebSocket connections are not origin-checked.",
                hint="Wrap the websocket router in AllowedHostsOriginValidator in config/asgi.py.",
                id="huizhen.W001",
            )
        ]
    return []


@register(deploy=True)
def celery_late_acks(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if not (
        getattr(settings, "CELERY_TASK_ACKS_LATE", False)
        and getattr(settings, "CELERY_TASK_REJECT_ON_WORKER_LOST", False)
    ):
        return [
            Warning(
                "Celery tasks are acknowledged before they finish; a worker crash loses them.",
                hint="Set CELERY_TASK_ACKS_LATE and CELERY_TASK_REJECT_ON_WORKER_LOST to True.",
                id="huizhen.W002",
            )
        ]
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return [
            Warning(
                "Celery runs tasks inline: no broker is configured.",
                hint="Set REDIS_URL (or CELERY_BROKER_URL) in production.",
                id="huizhen.W003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def dicom_ae_allow_list(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if not getattr(settings, "HUIZHEN_DICOM_REQUIRE_KNOWN_AE", False):
        return [
            Warning(
                "The DICOM server accepts associations from any calling AE title.",
                hint="Set HUIZHEN_DICOM_REQUIRE_KNOWN_AE=true and register each AE title "
                "with its organisation.",
                id="huizhen.W004",
            )
        ]
    return []


@register(Tags.database, deploy=True)
def production_database(app_configs: Any, **kwargs: Any) -> list[Error]:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        return [
            Error(
                "Production needs PostgreSQL (the audit trail and the outbox rely on it).",
                hint="Set DATABASE_URL=postgres://...",
                id="huizhen.E001",
            )
        ]
    return []
