"""HTTP plumbing shared by the DICOMweb views: authentication and the acting principal, CORS,
Accept header parsing, JSON and error responses, and streaming that suits WSGI and ASGI."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import parse_header_parameters
from django.utils.translation import gettext as _
from knox.models import AuthToken
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from registry.access import Principal, principal_for
from registry.errors import DomainError

DICOM_JSON = "application/dicom+json"
CORS_ALLOW_HEADERS = (
    "Authorization, Accept, Content-Type, Cache-Control, Range, X-Huizhen-Organisation, "
    "X-Request-ID"
)
CORS_EXPOSE_HEADERS = "Content-Type, Content-Length, Content-Location, Warning, X-Request-ID"


class NotAcceptable(DomainError):
    status_code = 406
    default_code = "not_acceptable"


class UnsupportedMediaType(DomainError):
    status_code = 415
    default_code = "unsupported_media_type"


class BadRequest(DomainError):
    status_code = 400
    default_code = "bad_request"


class PayloadTooLarge(DomainError):
    status_code = 413
    default_code = "too_large"


class _AnyAccept(BaseContentNegotiation):
    """DICOMweb negotiates its own media types (multipart/related with parameters, which DRF
    cannot match); DRF's renderer is only used for JSON error bodies."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return None

    def select_renderer(self, request: Request, renderers: list, format_suffix: Any = None):
        return (renderers[0], renderers[0].media_type)


class DicomWebThrottle(UserRateThrottle):
    """Off unless ``HUIZHEN_DICOMWEB_RATE`` is set: a viewer fetches one frame per request,
    hundreds a minute, which the API's general per-user rate would refuse."""

    scope = "dicomweb"

    def get_rate(self) -> str | None:
        return getattr(settings, "HUIZHEN_DICOMWEB_RATE", None)


class DicomWebView(APIView):
    """Knox bearer token or session auth (the API defaults); the acting organisation from
    ``X-Huizhen-Organisation``; no DRF parsing of bodies."""

    parser_classes: list = []
    content_negotiation_class = _AnyAccept
    # DICOMweb is specified by PS3.18 (and its conformance statement), not by the OpenAPI
    # schema of the REST API.
    schema = None
    throttle_classes = [DicomWebThrottle]

    @property
    def principal(self) -> Principal:
        if not hasattr(self, "_principal"):
            self._principal = principal_for(
                self.request.user, self.request.headers.get("X-Huizhen-Organisation")
            )
        return self._principal

    def session_key(self) -> str:
        """What names one viewing session, for the once-per-session audit."""
        auth = self.request.auth
        if isinstance(auth, AuthToken):
            return f"token:{auth.token_key}"
        session = getattr(self.request._request, "session", None)
        key = session.session_key if session is not None else None
        if key:
            return f"session:{key}"
        return f"day:{date.today().isoformat()}"


# --- CORS ---------------------------------------------------------------------------------


def _allowed_origin(origin: str) -> str | None:
    allowed = list(getattr(settings, "HUIZHEN_DICOMWEB_CORS_ORIGINS", []) or [])
    if not origin:
        return None
    if origin in allowed:
        return origin
    if "*" in allowed:
        return "*"
    return None


def _add_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = _allowed_origin(request.headers.get("Origin", ""))
    response.headers["Vary"] = ", ".join(
        v for v in (response.headers.get("Vary"), "Origin") if v and v.strip()
    )
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    return response


def cors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer CORS preflights without authentication (browsers send none) and mark every
    response for the origins in ``HUIZHEN_DICOMWEB_CORS_ORIGINS``. Credentials (cookies)
    are not allowed cross-origin: browser viewers use bearer tokens."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = HttpResponse(status=204)
            origin = _allowed_origin(request.headers.get("Origin", ""))
            if origin:
                response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
                response["Access-Control-Max-Age"] = "600"
            return _add_cors(request, response)
        return _add_cors(request, view(request, *args, **kwargs))

    wrapped.csrf_exempt = getattr(view, "csrf_exempt", False)  # type: ignore[attr-defined]
    return wrapped


# --- Accept ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``media_type`` (lower case), for multipart/related the
    ``part_type`` (its ``type`` parameter), the ``transfer_syntax`` parameter, and ``q``."""

    media_type: str
    part_type: str | None
    transfer_syntax: str | None
    q: float

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    def single_or_part_type(self) -> str:
        return (self.part_type or "") if self.is_multipart else self.media_type


def _split_unquoted(value: str, separator: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges in order of preference (q, then position). Malformed q counts as 1."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, item in enumerate(_split_unquoted(header or "", ",")):
        main, params = parse_header_parameters(item)
        params = {k.lower(): v.strip().strip('"') for k, v in params.items()}
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        part_type = params.get("type")
        ranges.append(
            (
                q,
                position,
                MediaRange(
                    media_type=main.strip().lower(),
                    part_type=part_type.lower() if part_type else None,
                    transfer_syntax=params.get("transfer-syntax") or None,
                    q=q,
                ),
            )
        )
    ranges.sort(key=lambda r: (-r[0], r[1]))
    return [r[2] for r in ranges]


def type_matches(pattern: str, media_type: str) -> bool:
    """Does a media range pattern (``*/*``, ``image/*``, or exact) cover ``media_type``?"""
    if pattern in ("*/*", "*", ""):
        return True
    major, _, minor = pattern.partition("/")
    if minor == "*":
        return media_type.startswith(major + "/")
    return pattern == media_type


def accepts_json(request: HttpRequest) -> None:
    """Search and metadata answer only DICOM JSON; refuse an Accept that excludes it."""
    ranges = parse_accept(request.headers.get("Accept"))
    if not ranges:
        return
    for r in ranges:
        if r.is_multipart:
            continue
        if type_matches(r.media_type, DICOM_JSON) or r.media_type == "application/json":
            return
    raise NotAcceptable(
        _("This resource is available as application/dicom+json only."),
    )


# --- responses ------------------------------------------------------------------------------


def dicom_json(data: Any, *, status: int = 200, warnings: Iterable[str] = ()) -> HttpResponse:
    """DICOM JSON as UTF-8 (PS3.18 F.2), without a charset parameter: some clients compare
    the Content-Type exactly."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = HttpResponse(body, status=status, content_type=DICOM_JSON)
    add_warnings(response, warnings)
    return response


def add_warnings(response: HttpResponse, warnings: Iterable[str]) -> None:
    """PS3.18 8.6 Warning header fields (``299 <agent>: <text>``); header fields carry ASCII
    only, so other characters are escaped."""
    texts = [
        '299 huizhen "{}"'.format(
            w.replace('"', "'").encode("ascii", "backslashreplace").decode("ascii")[:500]
        )
        for w in warnings
    ]
    if texts:
        response["Warning"] = ", ".join(texts)


def is_asgi(request: HttpRequest) -> bool:
    raw = request._request if isinstance(request, Request) else request
    return isinstance(raw, ASGIRequest)


async def _async_chunks(chunks: Iterator[bytes]):  # type: ignore[no-untyped-def]
    """Pull each chunk in a worker thread so that file reads never block the event loop
    and the body is never gathered in memory."""
    done = object()
    try:
        while True:
            chunk = await sync_to_async(next, thread_sensitive=False)(chunks, done)
            if chunk is done:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


def streaming(
    request: HttpRequest, chunks: Iterator[bytes], *, content_type: str, status: int = 200
) -> StreamingHttpResponse:
    """A streamed body. Django buffers a sync iterator under ASGI and an async one under
    WSGI, so the iterator's kind follows the server."""
    content: Any = _async_chunks(chunks) if is_asgi(request) else chunks
    return StreamingHttpResponse(content, status=status, content_type=content_type)
