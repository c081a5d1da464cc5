"""FHIR R4 views: parse, resolve the principal, call one selector or service, map, render.

One generic view per interaction, parameterised by a ``ResourceType`` from ``resources.py``.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import pydantic
from django.urls import reverse
from django.utils.translation import gettext as _
from knox.models import AuthToken
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from . import mappers
from .capability import capability_statement
from .http import FhirError, PublicFhirView, StaffFhirView
from .resources import RESOURCE_TYPES, ResourceType
from .search import parse_query


class MetadataView(PublicFhirView):
    def get(self, request: Request) -> Response:
        return Response(capability_statement(base_url=self.base_url()))


class UnsupportedTypeView(PublicFhirView):
    """Any other path under the base (another resource type, _history, operations): 404
    naming what is served."""

    def dispatch_error(self) -> FhirError:
        names = ", ".join(rt.name for rt in RESOURCE_TYPES)
        return FhirError.one(
            404,
            "not-supported",
            _(
                "Not served here. This server reads and searches %(types)s, and describes "
                "itself at metadata."
            )
            % {"types": names},
        )

    def get(self, request: Request, **kwargs: str) -> Response:
        raise self.dispatch_error()

    post = put = patch = delete = get


class ResourceView(StaffFhirView):
    resource: ResourceType | None = None

    @property
    def rt(self) -> ResourceType:
        assert self.resource is not None
        return self.resource

    def links(self) -> mappers.Links:
        return mappers.Links(
            fhir_base=self.base_url(),
            dicomweb_base=self.request.build_absolute_uri(reverse("dicomweb-studies")).removesuffix(
                "studies"
            ),
        )

    def session_key(self) -> str:
        """What names one viewing session, for the archive's once-per-session view audit."""
        auth = self.request.auth
        if isinstance(auth, AuthToken):
            return f"token:{auth.token_key}"
        session = getattr(self.request._request, "session", None)
        key = session.session_key if session is not None else None
        return f"session:{key}" if key else f"day:{date.today().isoformat()}"


class SearchView(ResourceView):
    def get(self, request: Request) -> Response:
        principal = self.principal
        query = parse_query(
            dict(request.query_params.lists()), self.rt.search_params, lenient=self.lenient()
        )
        rows = self.rt.search(principal=principal, query=query)
        total = len(rows) if isinstance(rows, list) else rows.count()
        page = list(rows[query.offset : query.offset + query.count]) if query.count else []
        links = self.links()
        url = f"{links.fhir_base}{self.rt.name}"
        criteria = [(k, v) for k, v in query.used if k not in ("_count", "_offset")]

        def page_url(offset: int) -> str:
            return f"{url}?{urlencode([*criteria, ('_count', query.count), ('_offset', offset)])}"

        more = query.count and query.offset + query.count < total
        bundle = mappers.searchset(
            resources=[self.rt.to_fhir(row, links) for row in page],
            total=total,
            links=links,
            self_url=page_url(query.offset),
            next_url=page_url(query.offset + query.count) if more else None,
            previous_url=(
                page_url(max(query.offset - query.count, 0))
                if query.offset and query.count
                else None
            ),
        )
        return Response(bundle)


class SearchCreateView(SearchView):
    def post(self, request: Request) -> Response:
        principal = self.principal
        body = request.data
        if not isinstance(body, dict):
            raise FhirError.one(
                400,
                "structure",
                _("The body must be a JSON object: a FHIR %(t)s.") % {"t": self.rt.name},
            )
        if body.get("resourceType") != self.rt.name:
            raise FhirError.one(
                422,
                "invalid",
                _("resourceType must be %(t)s.") % {"t": self.rt.name},
                f"{self.rt.name}.resourceType",
            )
        assert self.rt.model is not None and self.rt.create is not None
        try:
            resource = self.rt.model.model_validate(body)
        except pydantic.ValidationError as exc:
            raise FhirError(422, _validation_issues(self.rt.name, exc)) from None
        row, created = self.rt.create(principal, resource)
        result = self.rt.to_fhir(row, self.links())
        response = Response(
            result, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
        url = f"{self.base_url()}{self.rt.name}/{result.id}"
        response["Location" if created else "Content-Location"] = url
        return response


class ReadView(ResourceView):
    def get(self, request: Request, resource_id: str) -> Response:
        kwargs = {"session_key": self.session_key()} if self.rt.read_needs_session else {}
        row = self.rt.read(principal=self.principal, resource_id=resource_id, **kwargs)
        return Response(self.rt.to_fhir(row, self.links()))


def _expression(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += "." + ("resourceType" if part == "resource_type" else str(part))
    return path


def _validation_issues(resource_type: str, exc: pydantic.ValidationError) -> list:
    issues = []
    for error in exc.errors():
        expression = _expression(resource_type, tuple(error.get("loc", ())))
        message = " ".join(str(error.get("msg", "")).split())
        issues.append(("invalid", f"{expression}: {message}", expression))
    return issues
