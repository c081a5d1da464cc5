"""HTTP plumbing of the FHIR facade: media types, OperationOutcome errors, base views.

Every response is ``application/fhir+json``; every error is an OperationOutcome with the HTTP
status FHIR's RESTful API assigns: 400 bad search or unreadable body, 401 no credentials,
403 no membership or role, 404 unknown or not visible (the two are indistinguishable),
405, 406, 409 conflicting identifiers, 415, 422 a resource that breaks the rules, 429.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from fhir.resources.R4B.operationoutcome import OperationOutcome
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api import StaffView
from registry.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed

from .search import SearchError

FHIR_JSON = "application/fhir+json"


class FhirJsonRenderer(BaseRenderer):
    """Renders fhir.resources models with the package's own serialisation (so that what is
    sent is what was validated); plain dicts as JSON."""

    media_type = FHIR_JSON
    format = "json"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        if data is None:
            return b""
        if hasattr(data, "model_dump_json"):
            return data.model_dump_json(exclude_comments=True).encode("utf-8")
        return json.dumps(data, ensure_ascii=False).encode("utf-8")


class PlainJsonRenderer(FhirJsonRenderer):
    """For clients that ask for ``application/json``: the same body under that type."""

    media_type = "application/json"


class FhirJsonParser(JSONParser):
    media_type = FHIR_JSON


class PlainJsonParser(JSONParser):
    media_type = "application/json"


@dataclass
class FhirError(Exception):
    """An error answered as an OperationOutcome. ``issues`` are (code, diagnostics,
    expression or "") triples; FHIR issue-type codes (invalid, not-found, ...)."""

    status: int
    issues: list[tuple[str, str, str]]

    @classmethod
    def one(cls, status: int, code: str, diagnostics: str, expression: str = "") -> FhirError:
        return cls(status, [(code, diagnostics, expression)])


def operation_outcome(issues: list[tuple[str, str, str]], severity: str = "error"):
    return OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": severity,
                    "code": code,
                    "diagnostics": diagnostics,
                    **({"expression": [expression]} if expression else {}),
                }
                for code, diagnostics, expression in issues
            ],
        }
    )


def _outcome_of(exc: Exception) -> tuple[int, list[tuple[str, str, str]]] | None:
    if isinstance(exc, FhirError):
        return exc.status, exc.issues
    if isinstance(exc, SearchError):
        return 400, [("invalid", exc.message, "")]
    if isinstance(exc, NotFound | Http404):
        return 404, [("not-found", str(getattr(exc, "message", "")) or _("Not found."), "")]
    if isinstance(exc, Forbidden):
        return 403, [("forbidden", exc.message, "")]
    if isinstance(exc, Conflict):
        code = "duplicate" if exc.code == "identifier_taken" else "conflict"
        return 409, [(code, exc.message, "")]
    if isinstance(exc, ValidationFailed):
        issues = [("invalid", f"{name}: {msg}", "") for name, msg in exc.fields.items()]
        return 422, issues or [("invalid", exc.message, "")]
    if isinstance(exc, DomainError):
        return exc.status_code, [("processing", exc.message, "")]
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, [("login", str(exc.detail), "")]
    if isinstance(exc, exceptions.PermissionDenied):
        return 403, [("forbidden", str(exc.detail), "")]
    if isinstance(exc, exceptions.ParseError):
        return 400, [("structure", str(exc.detail), "")]
    if isinstance(exc, exceptions.Throttled):
        return 429, [("throttled", str(exc.detail), "")]
    if isinstance(exc, exceptions.MethodNotAllowed | exceptions.UnsupportedMediaType):
        return exc.status_code, [("not-supported", str(exc.detail), "")]
    if isinstance(exc, exceptions.NotAcceptable):
        return 406, [("not-supported", _("Only application/fhir+json is served."), "")]
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, [("processing", str(exc.detail), "")]
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    found = _outcome_of(exc)
    if found is None:
        return None  # an unexpected error: a 500 from Django, logged with its traceback
    status, issues = found
    response = Response(operation_outcome(issues), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="fhir"'
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(int(exc.wait))
    return response


class FhirMixin:
    """FHIR media types, OperationOutcome errors; not part of the REST API's OpenAPI schema
    (the CapabilityStatement describes this interface)."""

    renderer_classes = [FhirJsonRenderer, PlainJsonRenderer]
    parser_classes = [FhirJsonParser, PlainJsonParser]
    schema = None

    def get_exception_handler(self):
        return exception_handler

    def base_url(self) -> str:
        """The absolute service base, ending in ``/fhir/R4/``."""
        request: Request = self.request  # type: ignore[attr-defined]
        return request.build_absolute_uri(reverse("fhir-metadata")).removesuffix("metadata")

    def lenient(self) -> bool:
        request: Request = self.request  # type: ignore[attr-defined]
        prefer = request.headers.get("Prefer", "")
        return "handling=lenient" in prefer.replace(" ", "").lower()


class PublicFhirView(FhirMixin, APIView):
    """No credentials needed (the CapabilityStatement)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class StaffFhirView(FhirMixin, StaffView):
    """Knox bearer token or session, as the REST API; the acting organisation from
    ``X-Huizhen-Organisation``."""
