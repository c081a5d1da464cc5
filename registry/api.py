"""REST API views: parse, resolve the principal, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .access import Principal, access_patient, principal_for
from .auth import LoginRateThrottle, needs_second_factor, sign_in
from .errors import NotFound
from .serializers import (
    AuditEventSerializer,
    AuditQuerySerializer,
    BreakGlassSerializer,
    ConsentCreateSerializer,
    ConsentRevokeSerializer,
    ConsentSerializer,
    MeSerializer,
    OrganisationSerializer,
    PatientCreateSerializer,
    PatientSearchSerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    ProbableMatchQuerySerializer,
    ProbableMatchSerializer,
    TokenRequestSerializer,
)

ORG_HEADER = OpenApiParameter(
    "X-Huizhen-Organisation",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="External ID of the organisation to act in (default: the first membership).",
)


class StaffView(APIView):
    """Base for views that act for a staff member in one organisation."""

    @property
    def principal(self) -> Principal:
        if not hasattr(self, "_principal"):
            self._principal = principal_for(
                self.request.user, self.request.headers.get("X-Huizhen-Organisation")
            )
        return self._principal

    def paginate(self, queryset: Any, serializer_class: type) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- auth ---


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: dict},
        summary="Exchange username and password (and a TOTP code where required) for a token",
    )
    def post(self, request: Request) -> Response:
        data = _valid(TokenRequestSerializer, request.data)
        principal = sign_in(
            request=request._request,
            username=data["username"],
            password=data["password"],
            otp=data.get("otp", ""),
        )
        instance, token = AuthToken.objects.create(principal.user)
        return Response(
            {
                "token": token,
                "token_type": "Bearer",
                "expiry": instance.expiry,
                "username": principal.user.get_username(),
            }
        )


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None}, summary="Revoke the token in use")
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, AuthToken):
            request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(StaffView):
    @extend_schema(responses=MeSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request) -> Response:
        p = self.principal
        staff = getattr(p.user, "staff", None)
        return Response(
            MeSerializer(
                {
                    "username": p.user.get_username(),
                    "display_name": staff.display_name if staff else "",
                    "licence_number": staff.licence_number if staff else "",
                    "professional_title": staff.professional_title if staff else "",
                    "specialties": staff.specialties if staff else [],
                    "acting_organisation": p.organisation,
                    "acting_role": p.role,
                    "memberships": p.memberships,
                    "second_factor_required": needs_second_factor(p),
                }
            ).data
        )


# --- organisations ---


class OrganisationListView(StaffView):
    @extend_schema(
        responses=OrganisationSerializer(many=True),
        parameters=[
            OpenApiParameter("kind", str, required=False),
            OpenApiParameter("service", str, required=False),
        ],
    )
    def get(self, request: Request) -> Response:
        self.principal  # noqa: B018 - members only
        orgs = selectors.organisation_list(
            kind=request.query_params.get("kind"), service=request.query_params.get("service")
        )
        return Response(OrganisationSerializer(orgs, many=True).data)


class OrganisationDetailView(StaffView):
    @extend_schema(responses=OrganisationSerializer)
    def get(self, request: Request, organisation_id: str) -> Response:
        self.principal  # noqa: B018
        for org in selectors.organisation_list():
            if str(org.external_id) == str(organisation_id):
                return Response(OrganisationSerializer(org).data)
        raise NotFound(_("No such organisation."))


# --- patients ---


class PatientListView(StaffView):
    @extend_schema(
        parameters=[PatientSearchSerializer, ORG_HEADER],
        responses=PatientSerializer(many=True),
        summary="Search the patients you may see",
    )
    def get(self, request: Request) -> Response:
        query = _valid(PatientSearchSerializer, request.query_params)
        patients = selectors.patient_search(principal=self.principal, **query).prefetch_related(
            "identifiers"
        )
        return self.paginate(patients, PatientSerializer)

    @extend_schema(
        request=PatientCreateSerializer,
        responses={201: PatientSerializer, 200: PatientSerializer},
        parameters=[ORG_HEADER],
        summary="Register a patient (200 with the existing record when the ID number is known)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(PatientCreateSerializer, request.data)
        result = services.patient_create(
            principal=self.principal,
            data=services.PatientInput(
                name=data["name"],
                sex=data.get("sex"),
                birth_date=data.get("birth_date"),
                id_number=data.get("id_number") or None,
                name_pinyin=data.get("name_pinyin", ""),
                mobile=data.get("mobile", ""),
                address=data.get("address", ""),
                address_division_code=data.get("address_division_code", ""),
                home_organisation_id=data.get("home_organisation"),
                chronic_conditions=data.get("chronic_conditions", []),
                identifiers=[services.IdentifierInput(**i) for i in data.get("identifiers", [])],
            ),
        )
        return Response(
            PatientSerializer(result.patient).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class PatientDetailView(StaffView):
    @extend_schema(responses=PatientSerializer, parameters=[ORG_HEADER])
    def get(self, request: Request, patient_id: str) -> Response:
        patient = access_patient(self.principal, patient_id)
        return Response(PatientSerializer(patient).data)

    @extend_schema(
        request=PatientUpdateSerializer, responses=PatientSerializer, parameters=[ORG_HEADER]
    )
    def patch(self, request: Request, patient_id: str) -> Response:
        changes = _valid(PatientUpdateSerializer, request.data)
        patient = services.patient_update(
            principal=self.principal, patient_id=patient_id, changes=changes
        )
        return Response(PatientSerializer(patient).data)


class PatientMatchView(StaffView):
    @extend_schema(
        parameters=[ProbableMatchQuerySerializer, ORG_HEADER],
        responses=ProbableMatchSerializer(many=True),
        summary="Probable duplicates by name, birth date and mobile",
    )
    def get(self, request: Request) -> Response:
        query = _valid(ProbableMatchQuerySerializer, request.query_params)
        matches = selectors.patient_probable_matches(
            principal=self.principal,
            name=query["name"],
            birth_date=query.get("birth_date"),
            mobile=query.get("mobile"),
        )
        return Response(ProbableMatchSerializer(matches, many=True).data)


# --- consent ---


class ConsentListView(StaffView):
    @extend_schema(responses=ConsentSerializer(many=True), parameters=[ORG_HEADER])
    def get(self, request: Request, patient_id: str) -> Response:
        consents = selectors.consent_list(principal=self.principal, patient_id=patient_id)
        return Response(ConsentSerializer(consents, many=True).data)

    @extend_schema(
        request=ConsentCreateSerializer, responses={201: ConsentSerializer}, parameters=[ORG_HEADER]
    )
    def post(self, request: Request, patient_id: str) -> Response:
        data = _valid(ConsentCreateSerializer, request.data)
        consent = services.consent_record(
            principal=self.principal,
            patient_id=patient_id,
            kind=data["kind"],
            method=data["method"],
            organisation_id=data.get("organisation"),
            note=data.get("note", ""),
            granted_at=data.get("granted_at"),
        )
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)


class ConsentRevokeView(StaffView):
    @extend_schema(
        request=ConsentRevokeSerializer, responses=ConsentSerializer, parameters=[ORG_HEADER]
    )
    def post(self, request: Request, patient_id: str, consent_id: str) -> Response:
        data = _valid(ConsentRevokeSerializer, request.data)
        consent = services.consent_revoke(
            principal=self.principal,
            patient_id=patient_id,
            consent_id=consent_id,
            reason=data["reason"],
        )
        return Response(ConsentSerializer(consent).data)


# --- emergency access and audit ---


class BreakGlassView(StaffView):
    @extend_schema(
        request=BreakGlassSerializer,
        responses={201: dict},
        parameters=[ORG_HEADER],
        summary="Open one patient's record in an emergency (time-limited, audited, reported)",
    )
    def post(self, request: Request) -> Response:
        data = _valid(BreakGlassSerializer, request.data)
        result = services.break_glass_open(
            principal=self.principal,
            reason=data["reason"],
            patient_id=data.get("patient"),
            id_number=data.get("id_number"),
        )
        return Response(
            {"patient": PatientSerializer(result.patient).data, "expires_at": result.expires_at},
            status=status.HTTP_201_CREATED if result.expires_at else status.HTTP_200_OK,
        )


class AuditListView(StaffView):
    @extend_schema(
        parameters=[AuditQuerySerializer, ORG_HEADER],
        responses=AuditEventSerializer(many=True),
        summary="Search your organisation's audit trail (organisation admins)",
    )
    def get(self, request: Request) -> Response:
        query = _valid(AuditQuerySerializer, request.query_params)
        rows = selectors.audit_search(
            principal=self.principal,
            patient_id=query.get("patient"),
            action=query.get("action"),
            outcome=query.get("outcome"),
            actor_username=query.get("actor"),
            since=query.get("since"),
            until=query.get("until"),
        )
        return self.paginate(rows, AuditEventSerializer)


def _valid(serializer_class: type, data: Any) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
