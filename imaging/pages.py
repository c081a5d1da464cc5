"""Pages of the archive: the clinic's study list and the specialist's image viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry.access import principal_for
from registry.errors import NotFound

from . import access, selectors


@login_required
def study_list_page(request: HttpRequest) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    unmatched = request.GET.get("unmatched") == "1"
    studies = selectors.study_list(principal, unmatched=unmatched)
    page = Paginator(studies, 50).get_page(request.GET.get("page"))
    return render(request, "imaging/study_list.html", {"page": page, "unmatched": unmatched})


@login_required
def viewer_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    try:
        study = access.access_study(principal, study_uid)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    series = list(study.series.order_by("series_number", "pk"))
    return render(request, "imaging/viewer.html", {"study": study, "series": series})
