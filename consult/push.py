"""Live worklist updates: after commit, tell the centre (and the organisations above it), the
assignee and the requester that a consult changed. Best effort; pages re-fetch on a push."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from registry.models import Organisation, StaffProfile

from .models import ConsultRequest

logger = logging.getLogger(__name__)


def centre_group(organisation_external_id: str) -> str:
    return f"consult.centre.{organisation_external_id}"


def user_group(staff_external_id: str) -> str:
    return f"consult.user.{staff_external_id}"


def _groups(consult: ConsultRequest, extra_centres: list[int]) -> list[str]:
    org_ids: set[int] = set()
    for centre_id in [consult.centre_id, *extra_centres]:
        if centre_id is None:
            continue
        path = Organisation.objects.filter(pk=centre_id).values_list("path", flat=True).first()
        org_ids.update(int(p) for p in (path or "").strip("/").split("/") if p)
    groups = [
        centre_group(str(x))
        for x in Organisation.objects.filter(pk__in=org_ids).values_list("external_id", flat=True)
    ]
    users = [u for u in (consult.assignee_id, consult.requester_id) if u]
    groups += [
        user_group(str(x))
        for x in StaffProfile.objects.filter(user_id__in=users).values_list(
            "external_id", flat=True
        )
    ]
    return groups


def _message(consult: ConsultRequest) -> dict[str, Any]:
    return {
        "type": "worklist.update",
        "consult": {
            "id": str(consult.external_id),
            "state": consult.state,
            "urgency": consult.urgency,
            "consult_type": consult.consult_type,
            "accept_by": consult.accept_by.isoformat() if consult.accept_by else None,
            "report_by": consult.report_by.isoformat() if consult.report_by else None,
            "assigned": consult.assignee_id is not None,
        },
    }


def worklist_changed(consult: ConsultRequest, *, extra_centres: list[int] | None = None) -> None:
    """Schedule the push for after the current transaction commits."""
    groups = _groups(consult, extra_centres or [])
    message = _message(consult)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception:  # noqa: BLE001 - a lost push only delays a page refresh
                logger.warning("worklist push failed", exc_info=True)

    transaction.on_commit(send)
