"""Patient index writes that come from another system's feed (an HIS over HL7), not a person.

The feed is trusted to speak for its own identifiers: a patient is found by an identifier
within its assigning authority, else by resident ID number, and created or updated. A merge
(HL7 A40) points the prior record at the surviving one and moves its identifiers. Every
write is audited under a system actor (``hl7:<sending facility>``) and published as a domain
event, in one transaction.

Errors raised (all DomainError, so a caller can tell them from infrastructure failures):
ValidationFailed for data that cannot make a valid record, Conflict when the identifiers
and the resident ID number point at different patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.db import transaction
from django.utils.translation import gettext as _

from . import audit, events
from .errors import Conflict, ValidationFailed
from .identity import IdentityError, normalise_mobile, parse_resident_id, validate_division_code
from .models import IdentifierKind, Organisation, Patient, PatientIdentifier, Sex
from .services import pinyin_of

# A value the feed sends to erase a field (HL7 sends "" for "delete the stored value").
CLEAR = object()


@dataclass(frozen=True)
class FeedIdentifier:
    authority: str
    kind: str  # an IdentifierKind value
    value: str


@dataclass(frozen=True)
class FeedPatient:
    """Demographics as a feed states them. ``None`` means "not sent: keep what is stored";
    ``CLEAR`` (mobile, address) means "erase"."""

    identifiers: tuple[FeedIdentifier, ...] = ()
    id_number: str | None = None
    name: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    mobile: object = None
    address: object = None
    address_division_code: str | None = None
    ignored: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class FeedResult:
    patient: Patient
    created: bool
    fields: tuple[str, ...]


def _resolve(patient: Patient) -> Patient:
    seen = set()
    while patient.merged_into_id is not None:
        if patient.pk in seen:
            raise Conflict(_("The merge chain of this patient loops."), code="merge_loop")
        seen.add(patient.pk)
        patient = Patient.objects.select_for_update().get(pk=patient.merged_into_id)
    return patient


def _clean(data: FeedPatient) -> tuple[dict[str, object], list[str]]:
    """Validated values to write, and the names of fields dropped as invalid."""
    values: dict[str, object] = {}
    dropped = list(data.ignored)
    if data.name is not None:
        name = data.name.strip()
        if name:
            values["name"] = name[:100]
    if data.id_number:
        try:
            rid = parse_resident_id(data.id_number)
        except IdentityError:
            dropped.append("id_number")
        else:
            values["id_number"] = rid.number
            if data.birth_date and data.birth_date != rid.birth_date:
                raise ValidationFailed(
                    _("The birth date differs from the one in the resident ID number."),
                    fields={"birth_date": "mismatch"},
                )
            values.setdefault("birth_date", rid.birth_date)
            if data.sex in (None, Sex.UNKNOWN):
                values["sex"] = rid.sex
    if data.birth_date:
        values["birth_date"] = data.birth_date
    if data.sex in Sex.values and "sex" not in values:
        values["sex"] = data.sex
    if data.mobile is CLEAR:
        values["mobile"] = ""
    elif isinstance(data.mobile, str) and data.mobile:
        try:
            values["mobile"] = normalise_mobile(data.mobile)
        except IdentityError:
            dropped.append("mobile")
    if data.address is CLEAR:
        values["address"] = ""
    elif isinstance(data.address, str) and data.address.strip():
        values["address"] = data.address.strip()[:255]
    if data.address_division_code:
        try:
            values["address_division_code"] = validate_division_code(data.address_division_code)
        except IdentityError:
            dropped.append("address_division_code")
    return values, dropped


def _match(data: FeedPatient, id_number: str | None) -> Patient | None:
    """The one live patient the identifiers and ID number point at (merges followed)."""
    found: dict[int, Patient] = {}
    for ident in data.identifiers:
        row = (
            PatientIdentifier.objects.select_related("patient")
            .filter(authority=ident.authority, kind=ident.kind, value=ident.value)
            .first()
        )
        if row is not None:
            patient = _resolve(row.patient)
            found[patient.pk] = patient
    if id_number:
        by_id = Patient.objects.filter(id_number=id_number).first()
        if by_id is not None:
            patient = _resolve(by_id)
            found[patient.pk] = patient
    if len(found) > 1:
        raise Conflict(
            _("The identifiers and the resident ID number name different patients."),
            code="feed_identity_conflict",
        )
    if not found:
        return None
    pk = next(iter(found))
    return Patient.objects.select_for_update().get(pk=pk)


def _add_identifiers(patient: Patient, identifiers: tuple[FeedIdentifier, ...]) -> bool:
    added = False
    for ident in identifiers:
        _row, created = PatientIdentifier.objects.get_or_create(
            authority=ident.authority,
            kind=ident.kind,
            value=ident.value,
            defaults={"patient": patient},
        )
        added = added or created
    return added


def _check_kinds(identifiers: tuple[FeedIdentifier, ...]) -> None:
    for ident in identifiers:
        if ident.kind not in IdentifierKind.values or not ident.authority or not ident.value:
            raise ValidationFailed(
                _("An identifier needs an assigning authority, a known kind and a value."),
                fields={"identifiers": ident.kind},
            )


@transaction.atomic
def patient_upsert_from_feed(
    *, actor: audit.Actor, home_organisation: Organisation, data: FeedPatient
) -> FeedResult:
    """Create the patient the feed describes, or update the one it identifies.

    Fields the feed leaves empty keep their stored values. Creating needs a name, a sex and
    a birth date (the last two may come from the resident ID number).
    """
    _check_kinds(data.identifiers)
    values, dropped = _clean(data)
    id_number = values.get("id_number")
    patient = _match(data, id_number if isinstance(id_number, str) else None)
    detail: dict[str, object] = {"source": actor.username}
    if dropped:
        detail["ignored"] = sorted(set(dropped))
    if patient is None:
        missing = [name for name in ("name", "sex", "birth_date") if name not in values]
        if missing:
            raise ValidationFailed(
                _("A new patient needs a name, a sex and a birth date."),
                fields={name: "required" for name in missing},
            )
        patient = Patient(home_organisation=home_organisation, **values)
        patient.name_pinyin = pinyin_of(patient.name)
        patient.save()
        _add_identifiers(patient, data.identifiers)
        audit.record(
            actor=actor,
            action="patient.create.feed",
            object_type="patient",
            object_id=patient.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=home_organisation.pk,
            detail=detail,
        )
        events.publish("patient.created", {"patient": str(patient.external_id)})
        return FeedResult(patient, True, tuple(sorted(values)))
    if id_number and patient.id_number and patient.id_number != id_number:
        raise Conflict(
            _("The feed gives another resident ID number for this patient."),
            code="feed_id_number_changed",
        )
    birth = values.get("birth_date")
    if patient.id_number and birth and not id_number:
        if parse_resident_id(patient.id_number).birth_date != birth:
            raise ValidationFailed(
                _("The birth date differs from the one in the resident ID number."),
                fields={"birth_date": "mismatch"},
            )
    changed = [name for name, value in values.items() if getattr(patient, name) != value]
    for name in changed:
        setattr(patient, name, values[name])
    if "name" in changed:
        patient.name_pinyin = pinyin_of(patient.name)
    if changed:
        patient.save()
    if _add_identifiers(patient, data.identifiers):
        changed.append("identifiers")
    detail["fields"] = sorted(changed)
    audit.record(
        actor=actor,
        action="patient.update.feed",
        object_type="patient",
        object_id=patient.external_id,
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
        detail=detail,
    )
    if changed:
        events.publish(
            "patient.updated", {"patient": str(patient.external_id), "fields": sorted(changed)}
        )
    return FeedResult(patient, False, tuple(sorted(changed)))


@dataclass(frozen=True)
class MergeResult:
    survivor: Patient
    merged: Patient | None  # None: nothing to merge (already merged, or prior unknown)


@transaction.atomic
def patient_merge_from_feed(
    *,
    actor: audit.Actor,
    home_organisation: Organisation,
    survivor: FeedPatient,
    prior: tuple[FeedIdentifier, ...],
) -> MergeResult:
    """Merge the patient known by the ``prior`` identifiers into the surviving patient.

    The survivor is found (or created) as by ``patient_upsert_from_feed``. The prior record
    stays, pointing at the survivor (``merged_into``); its identifiers move to the survivor;
    its resident ID number moves too when the survivor has none. Idempotent: a repeated merge
    finds the prior identifiers already on the survivor and changes nothing.
    """
    _check_kinds(prior)
    kept = patient_upsert_from_feed(
        actor=actor, home_organisation=home_organisation, data=survivor
    ).patient
    old: Patient | None = None
    for ident in prior:
        row = (
            PatientIdentifier.objects.select_related("patient")
            .filter(authority=ident.authority, kind=ident.kind, value=ident.value)
            .first()
        )
        if row is not None and row.patient_id != kept.pk:
            old = Patient.objects.select_for_update().get(pk=row.patient_id)
            break
    if old is None:
        return MergeResult(kept, None)
    if old.merged_into_id is not None and _resolve(old).pk != kept.pk:
        raise Conflict(
            _("The prior patient was already merged into another record."),
            code="already_merged",
        )
    moved = PatientIdentifier.objects.filter(patient=old).update(patient=kept)
    moved_id_number = False
    if old.id_number and not kept.id_number:
        kept_id, old.id_number = old.id_number, None
        old.merged_into = kept
        old.save(update_fields=["id_number", "merged_into", "updated_at"])
        kept.id_number = kept_id
        kept.save(update_fields=["id_number", "updated_at"])
        moved_id_number = True
    else:
        old.merged_into = kept
        old.save(update_fields=["merged_into", "updated_at"])
    Patient.objects.filter(merged_into=old).update(merged_into=kept)
    audit.record(
        actor=actor,
        action="patient.merge.feed",
        object_type="patient",
        object_id=kept.external_id,
        patient_id=kept.external_id,
        subject_organisation_id=kept.home_organisation_id,
        detail={
            "merged": str(old.external_id),
            "identifiers_moved": moved,
            "id_number_moved": moved_id_number,
            "source": actor.username,
        },
    )
    events.publish(
        "patient.merged", {"patient": str(kept.external_id), "merged": str(old.external_id)}
    )
    return MergeResult(kept, old)
