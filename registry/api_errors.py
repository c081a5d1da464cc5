"""Maps domain errors and framework errors to JSON a person can act on: ``code``, ``detail``
and, for invalid input, ``fields``."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from . import audit
from .errors import DomainError, ValidationFailed


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    audit.flush_deferred()  # a refusal's transaction has ended by now: write it
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"code": exc.code, "detail": exc.message}
        if isinstance(exc, ValidationFailed) and exc.fields:
            body["fields"] = exc.fields
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        return Response({"code": "not_found", "detail": _("Not found.")}, status=404)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": _("Some fields are missing or not valid."),
            "fields": response.data,
        }
    elif isinstance(exc, exceptions.APIException):
        response.data = {
            "code": exc.get_codes() if isinstance(exc.get_codes(), str) else "error",
            "detail": str(exc.detail),
        }
    return response
