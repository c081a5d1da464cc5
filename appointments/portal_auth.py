"""Patient portal sign-in with a mainland mobile number and an SMS one-time code.

Codes are six digits, kept only as an HMAC, valid for ``HUIZHEN_PORTAL_OTP_TTL_SECONDS``
(300); ``HUIZHEN_PORTAL_OTP_MAX_ATTEMPTS`` (5) wrong tries lock the number for
``HUIZHEN_PORTAL_OTP_LOCK_SECONDS``. Requests are rate-limited per number and per client
address in the shared cache. The answer to a code request is the same whether or not the
number belongs to a patient, so the form reveals nobody.

The portal session is not a Django user: it holds the patients' external IDs under
``SESSION_KEY`` with its own idle timeout (``HUIZHEN_PORTAL_IDLE_SECONDS``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, sms
from registry.errors import DomainError, ValidationFailed
from registry.identity import IdentityError, mask_mobile, normalise_mobile
from registry.models import AuditOutcome, Patient

from .models import OtpChallenge
from .services import portal_actor

SESSION_KEY = "huizhen_portal"


class TooManyRequests(DomainError):
    status_code = 429
    default_code = "rate_limited"


class CodeRejected(DomainError):
    status_code = 400
    default_code = "code_rejected"


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def ttl() -> timedelta:
    return timedelta(seconds=_setting("HUIZHEN_PORTAL_OTP_TTL_SECONDS", 300))


def _hash(mobile: str, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"portal-otp:{mobile}:{code}".encode(), hashlib.sha256).hexdigest()


def _count(key: str, window: int) -> int:
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def _limit(key: str, limit: int, window: int) -> None:
    if _count(key, window) > limit:
        raise TooManyRequests(
            _("Too many requests. Please wait a while and try again."), code="rate_limited"
        )


def clean_mobile(raw: str) -> str:
    try:
        return normalise_mobile(raw)
    except IdentityError as exc:
        raise ValidationFailed(str(exc), fields={"mobile": exc.code}) from None


def _locked(mobile: str) -> bool:
    return OtpChallenge.objects.filter(mobile=mobile, locked_until__gt=timezone.now()).exists()


def _locked_error() -> TooManyRequests:
    minutes = _setting("HUIZHEN_PORTAL_OTP_LOCK_SECONDS", 900) // 60
    return TooManyRequests(
        _("Too many wrong codes. Sign-in for this number is locked for %(minutes)d minutes.")
        % {"minutes": minutes},
        code="locked",
    )


def otp_request(*, mobile: str, client_address: str | None) -> None:
    """Send a sign-in code to ``mobile`` if it belongs to a patient.

    Raises ValidationFailed (not a mobile number) or TooManyRequests (rate limit, lock).
    """
    number = clean_mobile(mobile)
    hour = 3600
    _limit(
        f"portal-otp:addr:{client_address or '-'}",
        _setting("HUIZHEN_PORTAL_OTP_PER_ADDRESS_PER_HOUR", 20),
        hour,
    )
    if not cache.add(
        f"portal-otp:gap:{number}", 1, timeout=_setting("HUIZHEN_PORTAL_OTP_RESEND_SECONDS", 60)
    ):
        raise TooManyRequests(
            _("A code was sent a moment ago. Please wait a minute before asking again."),
            code="resend_too_soon",
        )
    _limit(f"portal-otp:num:{number}", _setting("HUIZHEN_PORTAL_OTP_PER_NUMBER_PER_HOUR", 5), hour)
    if _locked(number):
        raise _locked_error()
    known = Patient.objects.filter(mobile=number, merged_into__isnull=True).exists()
    actor = portal_actor(number)
    audit.record(actor=actor, action="portal.otp.request", detail={"known": known})
    if not known:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    with transaction.atomic():
        OtpChallenge.objects.filter(mobile=number, used_at__isnull=True).update(
            used_at=timezone.now()
        )
        challenge = OtpChallenge.objects.create(
            mobile=number, code_hash=_hash(number, code), expires_at=timezone.now() + ttl()
        )
    minutes = max(1, int(ttl().total_seconds() // 60))
    text = _(
        "Your Huizhen sign-in code is %(code)s. It expires in %(minutes)d minutes. "
        "Never tell it to anyone."
    ) % {"code": code, "minutes": minutes}
    sms.send(sms.SmsMessage(mobile=number, text=text, reference=f"otp-{challenge.pk}"))


@dataclass(frozen=True)
class SignedIn:
    mobile: str
    patients: list[Patient]


def otp_verify(*, mobile: str, code: str, client_address: str | None) -> SignedIn:
    """Check a code; on success the challenge is used up and the number's patients returned.

    Raises CodeRejected (wrong or expired), TooManyRequests (locked or rate-limited).
    """
    number = clean_mobile(mobile)
    _limit(
        f"portal-otp:verify-addr:{client_address or '-'}",
        _setting("HUIZHEN_PORTAL_OTP_VERIFY_PER_ADDRESS_PER_HOUR", 60),
        3600,
    )
    now = timezone.now()
    actor = portal_actor(number)
    outcome: DomainError | None = None
    with transaction.atomic():
        challenge = (
            OtpChallenge.objects.select_for_update()
            .filter(mobile=number)
            .order_by("-created_at", "-id")
            .first()
        )
        if challenge is not None and challenge.locked_until and challenge.locked_until > now:
            outcome = _locked_error()
        elif challenge is None or challenge.used_at is not None or challenge.expires_at <= now:
            outcome = CodeRejected(
                _("This code has expired or was already used. Ask for a new one."),
                code="code_expired",
            )
        elif not hmac.compare_digest(challenge.code_hash, _hash(number, code.strip())):
            challenge.failed_attempts += 1
            if challenge.failed_attempts >= _setting("HUIZHEN_PORTAL_OTP_MAX_ATTEMPTS", 5):
                challenge.locked_until = now + timedelta(
                    seconds=_setting("HUIZHEN_PORTAL_OTP_LOCK_SECONDS", 900)
                )
                challenge.used_at = now
                outcome = _locked_error()
            else:
                outcome = CodeRejected(_("The code is not right. Please try again."))
            challenge.save(update_fields=["failed_attempts", "locked_until", "used_at"])
        else:
            challenge.used_at = now
            challenge.save(update_fields=["used_at"])
    if outcome is not None:
        audit.record(
            actor=actor,
            action="portal.sign_in",
            outcome=AuditOutcome.DENIED,
            detail={"reason": outcome.code},
        )
        raise outcome
    patients = list(Patient.objects.filter(mobile=number, merged_into__isnull=True).order_by("id"))
    for patient in patients:
        audit.record(
            actor=actor,
            action="portal.sign_in",
            object_type="patient",
            object_id=str(patient.external_id),
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
        )
    return SignedIn(mobile=number, patients=patients)


# --- the portal session ---


def session_start(session: Any, signed_in: SignedIn) -> None:
    session.cycle_key()
    now = int(time.time())
    session[SESSION_KEY] = {
        "mobile": signed_in.mobile,
        "patients": [str(p.external_id) for p in signed_in.patients],
        "active": str(signed_in.patients[0].external_id) if signed_in.patients else "",
        "started": now,
        "seen": now,
    }


def session_end(session: Any) -> None:
    session.pop(SESSION_KEY, None)
    session.cycle_key()


def session_patient(session: Any) -> tuple[Patient, str] | None:
    """The signed-in patient and mobile, or None (no session, idle or too old, or the record
    no longer carries that number). Touches the idle clock."""
    data = session.get(SESSION_KEY)
    if not data:
        return None
    now = int(time.time())
    idle = _setting("HUIZHEN_PORTAL_IDLE_SECONDS", 900)
    absolute = _setting("HUIZHEN_PORTAL_ABSOLUTE_SECONDS", 4 * 3600)
    if now - int(data.get("seen", 0)) > idle or now - int(data.get("started", 0)) > absolute:
        session.pop(SESSION_KEY, None)
        return None
    patient = Patient.objects.filter(
        external_id=data.get("active") or None,
        mobile=data.get("mobile", ""),
        merged_into__isnull=True,
    ).first()
    if patient is None:
        session.pop(SESSION_KEY, None)
        return None
    if now - int(data["seen"]) > 30:
        data["seen"] = now
        session[SESSION_KEY] = data
    return patient, data["mobile"]


def session_switch(session: Any, patient_id: str) -> bool:
    data = session.get(SESSION_KEY)
    if not data or patient_id not in data.get("patients", []):
        return False
    data["active"] = patient_id
    session[SESSION_KEY] = data
    return True


def masked(mobile: str) -> str:
    return mask_mobile(mobile)
