"""Search results as a Bundle of type searchset."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from .common import Links


def searchset(
    *,
    resources: list[Any],
    total: int,
    links: Links,
    self_url: str,
    next_url: str | None,
    previous_url: str | None,
) -> Bundle:
    link = [{"relation": "self", "url": self_url}]
    if next_url:
        link.append({"relation": "next", "url": next_url})
    if previous_url:
        link.append({"relation": "previous", "url": previous_url})
    entries = [
        {
            "fullUrl": f"{links.fhir_base}{r.get_resource_type()}/{r.id}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": timezone.now().isoformat()},
            "type": "searchset",
            "total": total,
            "link": link,
            **({"entry": entries} if entries else {}),
        }
    )
