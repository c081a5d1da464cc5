"""Clinician pages: my consults, new consult, specialist worklist, consult view with report
editor, critical-value inbox. The pages render what the selectors return; actions call the
REST API from plain JavaScript (session auth with the CSRF token)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry.access import principal_for
from registry.errors import DomainError, NotFound

from . import selectors
from .models import ConsultType, Urgency


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

    draft = next((r for r in detail.reports if r.status == "draft"), None)
    return render(
        request,
        "consult/consult_detail.html",
        {
            "d": detail,
            "c": detail.consult,
            "draft": draft,
            "is_assignee": is_assignee(principal, detail.consult),
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
