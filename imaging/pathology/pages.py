"""Pages of the pathology room: the slide list and the slide viewer."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry.access import principal_for
from registry.errors import NotFound

from . import selectors


@login_required
def slide_list_page(request: HttpRequest) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    studies = selectors.slide_studies_visible_to(principal)
    page = Paginator(studies, 50).get_page(request.GET.get("page"))
    return render(request, "pathology/slide_list.html", {"page": page})


@login_required
def viewer_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    try:
        study, slides, photos = selectors.study_slides(principal, study_uid)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    consult = request.GET.get("consult", "")
    try:
        consult = str(uuid.UUID(consult)) if consult else ""
    except ValueError:
        consult = ""
    wanted = request.GET.get("series", "")
    chosen = next((s for s in slides if s.series.series_instance_uid == wanted), None)
    chosen = chosen or (slides[0] if slides else None)
    return render(
        request,
        "pathology/viewer.html",
        {
            "study": study,
            "slides": slides,
            "photos": photos,
            "chosen": chosen,
            "consult": consult,
        },
    )
