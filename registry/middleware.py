"""HTTP middleware: request context for logs and audit, and idle session timeout."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from . import audit, context

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9\-_.]{8,64}$")


def _context_for(request: HttpRequest) -> context.RequestContext:
    supplied = request.headers.get("X-Request-ID", "")
    request_id = supplied if _REQUEST_ID_RE.match(supplied) else context.new_request_id()
    return context.RequestContext(
        request_id=request_id, client_address=request.META.get("REMOTE_ADDR") or None
    )


class RequestContextMiddleware:
    """Binds the request ID and client address; echoes the ID in ``X-Request-ID``."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if iscoroutinefunction(self):
            return self.__acall__(request)
        ctx = _context_for(request)
        with context.bound(ctx), audit.collecting_refusals():
            response = self.get_response(request)
            audit.flush_deferred()
        response["X-Request-ID"] = ctx.request_id
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        ctx = _context_for(request)
        with context.bound(ctx), audit.collecting_refusals():
            response = await self.get_response(request)
            await sync_to_async(audit.flush_deferred)()
        response["X-Request-ID"] = ctx.request_id
        return response


class SessionTimeoutMiddleware:
    """Ends a session idle longer than ``HUIZHEN_SESSION_IDLE_SECONDS`` or older than
    ``SESSION_COOKIE_AGE`` since sign-in (an absolute limit that activity cannot extend)."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is not None and user is not None and user.is_authenticated:
            now = int(time.time())
            started = int(session.setdefault("huizhen_started_at", now))
            last = int(session.get("huizhen_last_seen", now))
            if (
                now - last > settings.HUIZHEN_SESSION_IDLE_SECONDS
                or now - started > settings.SESSION_COOKIE_AGE
            ):
                logout(request)
            elif now - last > 60 or "huizhen_last_seen" not in session:
                # Writing at most once a minute keeps the session row from churning.
                session["huizhen_last_seen"] = now
        return self.get_response(request)
