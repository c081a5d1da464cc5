"""The common front of the endpoints that answer a browser's WebRTC offer with a server peer
(the pre-call echo test and the recorder): plain async views, because the aiortc peer must
live on the server's event loop after the response, which a DRF (sync) view cannot give it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _

MAX_OFFER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Offer:
    sdp: str
    body: dict[str, Any]
    user: Any | None  # an active staff user, or None for a patient's participant token
    participant_token: str


def _knox_user(header: str) -> Any:
    from knox.auth import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    parts = header.split()
    if len(parts) != 2 or parts[0] != "Bearer":
        return None
    try:
        user, _token = TokenAuthentication().authenticate_credentials(parts[1].encode())
    except AuthenticationFailed:
        return None
    return user


async def read_offer(request: HttpRequest) -> Offer | JsonResponse:
    """Parse and size-check the offer and find who sends it: a Bearer token, a patient's
    ``participant_token`` in the body, or a signed-in session with its CSRF token. Return
    the offer, or the JSON error to answer with (405, 400, 403, 401, 413)."""
    if request.method != "POST":
        return JsonResponse({"detail": _("Use POST.")}, status=405)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"detail": _("Send JSON.")}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str):
        return JsonResponse({"detail": _("Send an SDP offer.")}, status=400)
    if str(body.get("type", "offer")) != "offer":
        return JsonResponse({"detail": _("Send an SDP offer.")}, status=400)
    user: Any = None
    token = ""
    auth = request.headers.get("Authorization", "")
    if auth:
        user = await sync_to_async(_knox_user)(auth)
    elif body.get("participant_token"):
        token = str(body["participant_token"])
    else:
        user = await request.auser()
        if user.is_authenticated and user.is_active:
            check = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
            if check is not None:
                return JsonResponse({"detail": _("CSRF check failed.")}, status=403)
    if not token and (user is None or not user.is_authenticated or not user.is_active):
        return JsonResponse({"detail": _("Sign in first.")}, status=401)
    if len(body["sdp"]) > MAX_OFFER_BYTES:
        return JsonResponse({"detail": _("Offer too large.")}, status=413)
    return Offer(
        sdp=body["sdp"], body=body, user=user if not token else None, participant_token=token
    )
