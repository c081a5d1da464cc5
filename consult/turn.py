"""ICE servers for a participant: the configured STUN/TURN list plus time-limited TURN
credentials in coturn's REST-API scheme (``use-auth-secret`` / ``static-auth-secret``):
username ``"<expiry unix time>:<participant>"``, password base64(HMAC-SHA1(secret, username)).

Settings: ``HUIZHEN_ICE_SERVERS`` (list of RTCIceServer dicts, e.g. STUN, passed through),
``HUIZHEN_TURN_URLS`` (list of ``turn:``/``turns:`` URLs), ``HUIZHEN_TURN_SECRET`` (coturn's
shared secret; no TURN entry without it), ``HUIZHEN_TURN_TTL_SECONDS`` (default 3600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def turn_credentials(
    participant: str, *, secret: str, ttl: int, now: float | None = None
) -> dict[str, str]:
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{participant}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode()}


def ice_servers_for(participant: str) -> list[dict[str, Any]]:
    """RTCIceServer dicts for a browser or an aiortc peer acting for ``participant``."""
    servers: list[dict[str, Any]] = [dict(s) for s in getattr(settings, "HUIZHEN_ICE_SERVERS", [])]
    urls = list(getattr(settings, "HUIZHEN_TURN_URLS", []) or [])
    secret = getattr(settings, "HUIZHEN_TURN_SECRET", "") or ""
    if urls and secret:
        ttl = int(getattr(settings, "HUIZHEN_TURN_TTL_SECONDS", 3600))
        servers.append({"urls": urls, **turn_credentials(participant, secret=secret, ttl=ttl)})
    return servers
