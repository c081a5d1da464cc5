"""Reads of the archive, scoped to who may see them.

An organisation sees the studies it sent, the studies of patients whose home organisation
is in its tree, and studies shared with it (or with the user) through a consult.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from registry import audit
from registry.access import CLINICAL_ROLES, Principal, organisations_subtree_q
from registry.models import DicomApplicationEntity, Organisation

from .models import Study, StudyShare


def studies_visible_to_organisations(
    orgs: list[Organisation], *, user: object | None = None
) -> QuerySet[Study]:
    if not orgs:
        return Study.objects.none()
    share_q = Q(organisation__in=orgs)
    if user is not None:
        share_q |= Q(user=user)
    shared = StudyShare.objects.filter(share_q, study=OuterRef("pk"), revoked_at__isnull=True)
    return Study.objects.filter(
        organisations_subtree_q(orgs, "organisation__path")
        | organisations_subtree_q(orgs, "patient__home_organisation__path")
        | Exists(shared)
    )


def studies_visible_to(principal: Principal) -> QuerySet[Study]:
    return studies_visible_to_organisations(
        principal.organisations_with(CLINICAL_ROLES), user=principal.user
    )


def known_application_entity(ae_title: str, host: str) -> DicomApplicationEntity | None:
    """The registered AE for a calling AE title, if its host (when registered) matches."""
    entity = (
        DicomApplicationEntity.objects.select_related("organisation")
        .filter(ae_title=ae_title.strip().upper(), organisation__is_active=True)
        .first()
    )
    if entity is None:
        return None
    if entity.host and entity.host != host:
        return None
    return entity


def study_list(
    principal: Principal,
    *,
    unmatched: bool = False,
    since: datetime | None = None,
    patient_id: uuid.UUID | None = None,
) -> QuerySet[Study]:
    """Studies the principal may see, newest first: the "new studies" list of a clinic and,
    with ``unmatched``, the ones waiting to be linked to a registry patient."""
    studies = studies_visible_to(principal).select_related("organisation", "patient")
    if unmatched:
        studies = studies.filter(patient__isnull=True)
    if since:
        studies = studies.filter(received_at__gte=since)
    if patient_id:
        studies = studies.filter(patient__external_id=patient_id)
    audit.record(
        actor=principal.actor,
        action="imaging.study.list",
        object_type="study",
        patient_id=patient_id,
        detail={"unmatched": unmatched},
    )
    return studies.order_by("-received_at", "-pk")
