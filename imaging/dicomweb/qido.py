"""QIDO-RS (PS3.18 10.6): search studies, series and instances visible to the principal.

Query keys are attribute keywords or tags; matching (single value, UID list, wildcard, date
range) is ``imaging.query``'s, shared with C-FIND. An attribute the index cannot match on is
ignored with a Warning header, as the standard asks. Zero matches answer 200 with ``[]``
(PS3.18 as amended by CP-2473; earlier editions said 204).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Min, QuerySet
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils.translation import gettext as _
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from imaging.access import record_study_search
from imaging.attributes import instance_json, series_json, study_json
from imaging.models import Instance, Series
from imaging.query import INSTANCE_FIELDS, SERIES_FIELDS, STUDY_FIELDS, BadQuery, filters
from imaging.selectors import studies_visible_to
from registry.access import Principal

from .http import BadRequest

CONTROL_PARAMETERS = frozenset({"limit", "offset", "fuzzymatching", "includefield", "accept"})
MATCHABLE = {
    "study": set(STUDY_FIELDS),
    "series": set(STUDY_FIELDS) | set(SERIES_FIELDS),
    "instance": set(STUDY_FIELDS) | set(SERIES_FIELDS) | set(INSTANCE_FIELDS),
}
# What includefield=all adds at the study and series levels (from one instance of each);
# at the instance level it adds every attribute that is not bulk data.
STUDY_LEVEL = frozenset(
    {
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientComments",
        "OtherPatientIDs",
        "EthnicGroup",
        "InstitutionName",
        "NameOfPhysiciansReadingStudy",
        "AdmittingDiagnosesDescription",
        "RequestedProcedureDescription",
        "TimezoneOffsetFromUTC",
    }
)
SERIES_LEVEL = frozenset(
    {
        "SeriesTime",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepDescription",
        "ProtocolName",
        "Laterality",
        "Manufacturer",
        "ManufacturerModelName",
        "StationName",
        "OperatorsName",
        "PerformingPhysicianName",
        "FrameOfReferenceUID",
    }
)


@dataclass
class Search:
    criteria: list[tuple[str, str]] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    include_all: bool = False
    fuzzy: bool = False
    limit: int = 0
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


def _keyword(key: str) -> str | None:
    """The keyword for a query key (keyword or tag); None for one that cannot be matched
    (a private tag or a sequence path). Raises BadRequest for anything else."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return keyword_for_tag(int(key, 16)) or None
    if "." in key:  # a sequence path (e.g. 00081110.00081150): not matched on
        return None
    if tag_for_keyword(key) is not None:
        return key
    raise BadRequest(
        _("%(key)s is neither a DICOM attribute keyword nor a tag.") % {"key": key[:64]}
    )


def _count(params: QueryDict, name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise BadRequest(_("%(name)s must be a whole number of 0 or more.") % {"name": name})
    return number


def parse_search(params: QueryDict, level: str, fixed: Iterable[tuple[str, str]] = ()) -> Search:
    """Read QIDO query parameters; ``fixed`` are the UIDs named in the URL path."""
    search = Search(criteria=list(fixed))
    cap = int(getattr(settings, "HUIZHEN_DICOMWEB_MAX_RESULTS", 1000))
    search.limit = _count(params, "limit", cap) or cap
    if search.limit > cap:
        search.warnings.append(f"limit lowered to {cap}, the most one page returns")
        search.limit = cap
    search.offset = _count(params, "offset", 0)
    fuzzy = params.get("fuzzymatching", "false").lower()
    if fuzzy not in ("true", "false"):
        raise BadRequest(_("fuzzymatching is true or false."))
    search.fuzzy = fuzzy == "true"
    ignored = []
    for key, values in params.lists():
        if key in CONTROL_PARAMETERS:
            continue
        keyword = _keyword(key)
        if keyword is None or keyword not in MATCHABLE[level]:
            ignored.append(key)
            continue
        search.criteria.extend((keyword, value) for value in values)
    if ignored:
        search.warnings.append(
            "These attributes are not supported for matching and were ignored: "
            + ", ".join(sorted(ignored))[:300]
        )
    for value in params.getlist("includefield"):
        for token in (t.strip() for t in value.split(",")):
            if not token:
                continue
            if token.lower() == "all":
                search.include_all = True
                continue
            keyword = _keyword(token)
            if keyword is None:
                search.warnings.append(f"includefield {token[:64]} is not supported")
                continue
            search.include.append(keyword)
    return search


def _q(level: str, search: Search) -> Any:
    try:
        return filters(level, search.criteria, fuzzy=search.fuzzy)
    except BadQuery as exc:
        raise BadRequest(_("A query value is not valid: %(e)s") % {"e": exc}) from exc


def _page(queryset: QuerySet, search: Search) -> tuple[list, bool]:
    rows = list(queryset[search.offset : search.offset + search.limit + 1])
    return rows[: search.limit], len(rows) > search.limit


def _first_metadata(field: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The metadata of the first instance (by id) of each study or series: two queries."""
    if not ids:
        return {}
    firsts = (
        Instance.objects.filter(**{f"{field}__in": ids})
        .values(field)
        .annotate(first=Min("id"))
        .values_list("first", flat=True)
    )
    return dict(Instance.objects.filter(pk__in=list(firsts)).values_list(field, "metadata"))


def _level_tags(metadata: dict[str, Any], names: frozenset[str]) -> list[str]:
    wanted = {f"{tag_for_keyword(k):08X}" for k in names if tag_for_keyword(k) is not None}
    return [tag for tag in metadata if tag in wanted or tag.startswith("0010")]


def _with_url(item: dict[str, Any], url: str) -> dict[str, Any]:
    item["00081190"] = {"vr": "UR", "Value": [url]}
    return item


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("dicomweb-studies"))


def search_studies(
    request: HttpRequest, principal: Principal, search: Search
) -> tuple[list[dict[str, Any]], bool]:
    studies = (
        studies_visible_to(principal).filter(_q("study", search)).order_by("-study_date", "id")
    )
    rows, more = _page(studies, search)
    wants = search.include or search.include_all
    metadata = _first_metadata("series__study_id", [s.pk for s in rows]) if wants else {}
    base = _base(request)
    results = []
    for study in rows:
        md = metadata.get(study.pk) or {}
        include = search.include + (_level_tags(md, STUDY_LEVEL) if search.include_all else [])
        item = study_json(study, include=include, metadata=md)
        results.append(_with_url(item, f"{base}/{study.study_instance_uid}"))
    _audit(principal, "study", search)
    return results, more


def search_series(
    request: HttpRequest, principal: Principal, search: Search
) -> tuple[list[dict[str, Any]], bool]:
    series_qs = (
        Series.objects.filter(study__in=studies_visible_to(principal))
        .filter(_q("series", search))
        .select_related("study")
        .order_by("study_id", "series_number", "id")
    )
    rows, more = _page(series_qs, search)
    wants = search.include or search.include_all
    metadata = _first_metadata("series_id", [s.pk for s in rows]) if wants else {}
    base = _base(request)
    results = []
    for series in rows:
        md = metadata.get(series.pk) or {}
        include = search.include + (
            _level_tags(md, STUDY_LEVEL | SERIES_LEVEL) if search.include_all else []
        )
        item = series_json(series, include=include, metadata=md)
        url = f"{base}/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        results.append(_with_url(item, url))
    _audit(principal, "series", search)
    return results, more


def search_instances(
    request: HttpRequest, principal: Principal, search: Search
) -> tuple[list[dict[str, Any]], bool]:
    instances = (
        Instance.objects.filter(series__study__in=studies_visible_to(principal))
        .filter(_q("instance", search))
        .select_related("series__study")
        .order_by("series_id", "instance_number", "id")
    )
    wants = search.include or search.include_all
    if not wants:
        instances = instances.defer("metadata")
    rows, more = _page(instances, search)
    base = _base(request)
    results = []
    for instance in rows:
        if not wants:
            instance.metadata = {}  # deferred: nothing to include, and no query per row
        include = search.include + (list(instance.metadata) if search.include_all else [])
        item = instance_json(instance, include=include)
        series = instance.series
        url = (
            f"{base}/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
            f"/instances/{instance.sop_instance_uid}"
        )
        results.append(_with_url(item, url))
    _audit(principal, "instance", search)
    return results, more


def _audit(principal: Principal, level: str, search: Search) -> None:
    record_study_search(principal, level=level, keys=[k for k, _ in search.criteria])


def fixed_study(study_uid: str) -> list[tuple[str, str]]:
    return [("StudyInstanceUID", study_uid)]


def fixed_series(study_uid: str, series_uid: str) -> list[tuple[str, str]]:
    return [("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)]
