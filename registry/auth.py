"""Signing in: API tokens, lockout after repeated failures, and the second factor."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django_otp import devices_for_user, match_token
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from . import audit
from .access import SECOND_FACTOR_ROLES, Principal, principal_for
from .errors import DomainError, Forbidden, ValidationFailed
from .models import AuditOutcome


class SignInLockedOut(DomainError):
    status_code = 429
    default_code = "locked_out"


class SecondFactorRequired(DomainError):
    status_code = 401
    default_code = "otp_required"


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME * 60)
    return _(
        "Too many failed sign-ins for this account from this address. Try again in "
        "%(minutes)d minutes, or ask your organisation admin to unlock it."
    ) % {"minutes": minutes}


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """What axes answers on a locked-out sign-in: JSON for the API, text for pages."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "locked_out", "detail": lockout_message()}, status=429)
    return HttpResponse(lockout_message(), status=429, content_type="text/plain; charset=utf-8")


class LoginRateThrottle(SimpleRateThrottle):
    """Sign-in attempts per client address, before the per-account lockout."""

    scope = "login"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def needs_second_factor(principal: Principal) -> bool:
    return bool(settings.HUIZHEN_REQUIRE_2FA) and principal.has_role(*SECOND_FACTOR_ROLES)


def sign_in(*, request: HttpRequest, username: str, password: str, otp: str = "") -> Principal:
    """Check credentials (with lockout), membership and, where required, the TOTP code.

    Raises SignInLockedOut, ValidationFailed (wrong credentials), Forbidden (no membership,
    no second-factor device) or SecondFactorRequired.
    """
    failure = audit.Actor(user_id=None, username=(username or "")[:150])
    user = authenticate(request=request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        audit.record(
            actor=failure,
            action="auth.sign_in",
            outcome=AuditOutcome.DENIED,
            detail={"reason": "locked_out"},
        )
        raise SignInLockedOut(lockout_message())
    if user is None:
        audit.record(
            actor=failure,
            action="auth.sign_in",
            outcome=AuditOutcome.DENIED,
            detail={"reason": "bad_credentials"},
        )
        raise ValidationFailed(_("Wrong username or password."), code="bad_credentials")
    principal = principal_for(user)
    if needs_second_factor(principal):
        if not any(devices_for_user(user, confirmed=True)):
            audit.record(
                actor=principal.actor,
                action="auth.sign_in",
                outcome=AuditOutcome.DENIED,
                detail={"reason": "no_otp_device"},
            )
            raise Forbidden(
                _(
                    "Your role requires two-factor sign-in; ask an admin to set up your "
                    "authenticator app."
                ),
                code="otp_device_missing",
            )
        if not otp or match_token(user, otp.strip()) is None:
            audit.record(
                actor=principal.actor,
                action="auth.sign_in",
                outcome=AuditOutcome.DENIED,
                detail={"reason": "otp"},
            )
            raise SecondFactorRequired(
                _("Enter the 6-digit code from your authenticator app."),
            )
    audit.record(actor=principal.actor, action="auth.sign_in")
    return principal
