"""Clinician pages: my consults, new consult, specialist worklist, consult view with report
editor, critical-value inbox. The pages render what the selectors return; actions call the
REST API from plain JavaScript (session auth with the CSRF token)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry.access import principal_for
from registry.errors import DomainError, NotFound

from . import referrals, report_structure, selectors
from .models import ConsultType, RecommendationKind, Urgency


def _principal(request: HttpRequest):  # type: ignore[no-untyped-def]
    return principal_for(request.user, request.GET.get("organisation"))


@login_required
def my_consults_page(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    consults = selectors.consult_list_requested(
        principal=principal, clinic=request.GET.get("clinic") == "1"
    )[:100]
    return render(request, "consult/my_consults.html", {"consults": consults})


@login_required
def new_consult_page(request: HttpRequest) -> HttpResponse:
    _principal(request)
    return render(
        request,
        "consult/new_consult.html",
        {"types": ConsultType.choices, "urgencies": Urgency.choices},
    )


@login_required
def worklist_page(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    return render(
        request,
        "consult/worklist.html",
        {
            "mine": selectors.worklist(principal=principal, which="mine")[:100],
            "unassigned": selectors.worklist(principal=principal, which="unassigned")[:100],
        },
    )


@login_required
def consult_page(request: HttpRequest, consult_id: str) -> HttpResponse:
    principal = _principal(request)
    try:
        detail = selectors.consult_detail(principal=principal, consult_id=consult_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    from .access import is_assignee

    consult_type = detail.consult.consult_type
    for r in detail.reports:
        r.sections = report_structure.labelled(consult_type, r.structured or {})
        r.recommendation_label = (
            RecommendationKind(r.recommendation_kind).label if r.recommendation_kind else ""
        )
    draft = next((r for r in detail.reports if r.status == "draft"), None)
    filled = (draft.structured or {}) if draft is not None else {}
    referral = (
        referrals.referrals_visible_to(principal)
        .select_related("to_organisation", "from_organisation", "back_to_organisation")
        .filter(consult=detail.consult)
        .first()
    )
    return render(
        request,
        "consult/consult_detail.html",
        {
            "d": detail,
            "c": detail.consult,
            "draft": draft,
            "is_assignee": is_assignee(principal, detail.consult),
            "sections": [
                (s.key, s.label, s.kind, filled.get(s.key, ""))
                for s in report_structure.sections_for(consult_type)
            ],
            "recommendation_kinds": RecommendationKind.choices,
            "draft_codes": ", ".join(draft.icd10_codes or []) if draft is not None else "",
            "referral": referral,
            "may_act_on_referral": referral is not None
            and referrals.is_receiving_side(principal, referral),
        },
    )


@login_required
def critical_inbox_page(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    alerts = selectors.critical_value_list(principal=principal)[:200]
    return render(request, "consult/critical_inbox.html", {"alerts": alerts})


@login_required
def statistics_page(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    try:
        stats = selectors.consult_statistics(principal=principal)
    except DomainError as exc:
        return render(request, "consult/statistics.html", {"error": exc.message}, status=403)
    return render(request, "consult/statistics.html", {"stats": stats})


# --- live consult room -----------------------------------------------------------------------


def _room_strings() -> dict[str, str]:
    from django.utils.translation import gettext as _

    return {
        "connecting": _("Connecting…"),
        "connected": _("Connected."),
        "reconnecting": _("Connection lost; reconnecting…"),
        "noCamera": _("No camera or microphone: you can still chat."),
        "revoked": _("You were removed from this session."),
        "ended": _("The session has ended."),
        "forbidden": _("You are not a participant of this session."),
        "throttled": _("Too many messages; the connection was closed."),
        "fallback": _(
            "The live call failed. The consult continues by messages and attachments; "
            "nothing said so far is lost."
        ),
        "online": _("online"),
        "away": _("reconnecting"),
        "offline": _("offline"),
        "you": _("you"),
        "testing": _("Testing the link…"),
        "video_ok": _("Link good enough for video."),
        "audio_only": _("Weak link: use audio only, with chat and still images."),
        "store_and_forward": _("No usable live link: send messages and attachments instead."),
        "rtt": _("round trip"),
        "loss": _("loss"),
        "relayed": _("relayed through TURN"),
        "direct": _("direct"),
        "needLink": _("Open the link from your SMS to join."),
        "image": _("Still image"),
    }


def room_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """Staff see the room of a session they may see; a patient arrives from the join page
    with a participant token kept in the browser tab (the page itself holds no data)."""
    from . import live

    context: dict[str, object] = {"session_id": session_id, "strings": _room_strings()}
    if request.user.is_authenticated:
        try:
            session = live.session_access(principal=_principal(request), session_id=session_id)
        except DomainError as exc:
            raise Http404(exc.message) from exc
        context.update(
            {
                "session": session,
                "consult_id": str(session.consult.external_id),
                "participants": live.participants_active(session),
                "messages": live.messages_of(session.consult)[-100:],
            }
        )
    return render(request, "consult/room.html", context)


def patient_join_page(request: HttpRequest, token: str) -> HttpResponse:
    """The patient's one-time link: ask for an SMS code, confirm it, then enter the room."""
    return render(request, "consult/join.html", {"token": token})
