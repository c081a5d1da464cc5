"""Reads of ECG records, scoped by the archive's study visibility, and the gate for one
record. A record is visible exactly when its study is (imaging.selectors)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from registry import audit
from registry.access import Principal
from registry.errors import NotFound
from registry.models import AuditOutcome

from ..selectors import studies_visible_to
from . import measure
from .models import EcgRecord

VIEW_ACTION = "ecg.record.view"


def ecg_records_visible_to(principal: Principal) -> QuerySet[EcgRecord]:
    return EcgRecord.objects.filter(study__in=studies_visible_to(principal))


def access_ecg_record(principal: Principal, record_id: uuid.UUID | str) -> EcgRecord:
    """The record if the principal may see its study; else NotFound, and a refusal of a
    record that exists is audited (the same answer as for one that does not)."""
    try:
        key = uuid.UUID(str(record_id))
    except ValueError:
        key = None
    record = (
        ecg_records_visible_to(principal)
        .select_related("study", "patient", "instance__series", "confirmed_by")
        .filter(external_id=key)
        .first()
        if key
        else None
    )
    if record is None:
        hidden = (
            EcgRecord.objects.filter(external_id=key)
            .values_list("organisation_id", "patient__external_id")
            .first()
            if key
            else None
        )
        if hidden is not None:
            audit.record(
                actor=principal.actor,
                action=VIEW_ACTION,
                outcome=AuditOutcome.DENIED,
                object_type="ecg_record",
                object_id=key,
                patient_id=hidden[1],
                subject_organisation_id=hidden[0],
            )
        raise NotFound(_("No such ECG."))
    return record


def ecg_record_list(
    principal: Principal,
    *,
    patient_id: uuid.UUID | None = None,
    study_uid: str | None = None,
) -> QuerySet[EcgRecord]:
    records = ecg_records_visible_to(principal).select_related("study", "patient")
    if patient_id:
        records = records.filter(patient__external_id=patient_id)
    if study_uid:
        records = records.filter(study__study_instance_uid=study_uid)
    audit.record(
        actor=principal.actor,
        action="ecg.record.list",
        object_type="ecg_record",
        patient_id=patient_id,
    )
    return records.order_by("-acquired_at", "-created_at", "-pk")


def current_values(record: EcgRecord) -> dict[str, Any]:
    """The confirmed values when a specialist confirmed them, else the suggestions."""
    if record.confirmed:
        return dict(record.confirmed)
    return {n: record.suggested.get(n) for n in measure.MEASUREMENT_FIELDS}


@dataclass(frozen=True)
class Prior:
    record: EcgRecord
    values: dict[str, Any]
    deltas: dict[str, float | None]


def ecg_priors(principal: Principal, record: EcgRecord, *, limit: int = 5) -> list[Prior]:
    """The patient's earlier ECGs the principal may see, newest first, each with the change
    of every measurement from it to this record."""
    if record.patient_id is None:
        return []
    earlier = ecg_records_visible_to(principal).filter(patient_id=record.patient_id)
    earlier = earlier.exclude(pk=record.pk).select_related("study")
    if record.acquired_at is not None:
        earlier = earlier.filter(acquired_at__lt=record.acquired_at)
    else:
        earlier = earlier.filter(created_at__lt=record.created_at)
    now = current_values(record)
    out = []
    for prior in earlier.order_by("-acquired_at", "-created_at")[:limit]:
        values = current_values(prior)
        out.append(Prior(prior, values, measure.deltas(now, values)))
    return out
