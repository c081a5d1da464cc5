"""Pages of ECGs: the list of ECGs one may see and the interactive 12-lead viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry.access import CLINICAL_ROLES, principal_for
from registry.errors import NotFound

from ..access import record_study_view
from . import measure, selectors
from .services import CONFIRMING_ROLES


@login_required
def ecg_list_page(request: HttpRequest) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    records = selectors.ecg_record_list(principal)
    page = Paginator(records, 50).get_page(request.GET.get("page"))
    return render(request, "ecg/list.html", {"page": page})


@login_required
def ecg_viewer_page(request: HttpRequest, record_id: str) -> HttpResponse:
    principal = principal_for(request.user, request.GET.get("organisation"))
    try:
        record = selectors.access_ecg_record(principal, record_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if not request.session.session_key:
        request.session.save()
    record_study_view(principal, record.study, f"session:{request.session.session_key}")
    values = selectors.current_values(record)
    fields = [
        (name, record.suggested.get(name), values.get(name)) for name in measure.MEASUREMENT_FIELDS
    ]
    return render(
        request,
        "ecg/viewer.html",
        {
            "record": record,
            "fields": fields,
            "flags": record.confirmed_flags if record.confirmed_flags is not None else record.flags,
            "all_flags": [
                measure.FLAG_BRADYCARDIA,
                measure.FLAG_TACHYCARDIA,
                measure.FLAG_IRREGULAR,
                measure.FLAG_LONG_QTC,
                measure.FLAG_ST_ELEVATION,
                measure.FLAG_FAST_WIDE,
            ],  # fmt: skip
            "priors": [
                (p, [(n, p.values.get(n), p.deltas.get(n)) for n in measure.MEASUREMENT_FIELDS])
                for p in selectors.ecg_priors(principal, record)
            ],
            "may_confirm": principal.role in CONFIRMING_ROLES and principal.role in CLINICAL_ROLES,
        },
    )
