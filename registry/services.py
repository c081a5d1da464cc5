"""Every write in the registry: organisations, staff, patients, consent, sharing, emergency
access. Each service validates before its first write, runs in one transaction, writes the
audit trail and publishes a domain event where other apps must hear of the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from knox.models import AuthToken
from pypinyin import lazy_pinyin

from . import audit, events
from .access import (
    CLINICAL_ROLES,
    Principal,
    access_patient,
    organisations_subtree_q,
    patients_visible_to,
)
from .errors import Conflict, Forbidden, NotFound, ValidationFailed
from .identity import (
    IdentityError,
    normalise_icd10,
    normalise_mobile,
    parse_resident_id,
    split_chinese_name,
    validate_division_code,
)
from .models import (
    AuditOutcome,
    BreakGlassAccess,
    Consent,
    ConsentKind,
    ConsentMethod,
    DicomApplicationEntity,
    Hl7Facility,
    IdentifierKind,
    Membership,
    Organisation,
    OrganisationKind,
    Patient,
    PatientIdentifier,
    PatientShare,
    Role,
    Service,
    Sex,
    StaffProfile,
)
from .notifications import notify

User = get_user_model()


# --- Organisations and staff -----------------------------------------------------------------


@transaction.atomic
def organisation_create(
    *,
    name: str,
    kind: str,
    division_code: str,
    parent: Organisation | None = None,
    services: list[str] | None = None,
    ae_titles: list[str] | None = None,
    hl7_facilities: list[str] | None = None,
) -> Organisation:
    if kind not in OrganisationKind.values:
        raise ValidationFailed(_("Unknown organisation kind."), fields={"kind": kind})
    unknown = sorted(set(services or []) - set(Service.values))
    if unknown:
        raise ValidationFailed(_("Unknown services."), fields={"services": ", ".join(unknown)})
    try:
        validate_division_code(division_code)
    except IdentityError as exc:
        raise ValidationFailed(str(exc), fields={"division_code": str(exc)}) from exc
    org = Organisation.objects.create(
        name=name,
        kind=kind,
        parent=parent,
        division_code=division_code,
        services=sorted(set(services or [])),
        path="",
    )
    org.path = f"{parent.path if parent else '/'}{org.pk}/"
    org.save(update_fields=["path"])
    for title in ae_titles or []:
        DicomApplicationEntity.objects.create(organisation=org, ae_title=title.strip().upper())
    for code in hl7_facilities or []:
        Hl7Facility.objects.create(organisation=org, code=code.strip())
    return org


@transaction.atomic
def staff_create(
    *,
    username: str,
    password: str,
    display_name: str,
    memberships: list[tuple[Organisation, str]],
    licence_number: str = "",
    professional_title: str = "",
    specialties: list[str] | None = None,
    mobile: str = "",
    is_staff: bool = False,
) -> Any:
    for _org, role in memberships:
        if role not in Role.values:
            raise ValidationFailed(_("Unknown role."), fields={"role": role})
    user = User.objects.create_user(username=username, password=password, is_staff=is_staff)
    StaffProfile.objects.create(
        user=user,
        display_name=display_name,
        licence_number=licence_number,
        professional_title=professional_title,
        specialties=specialties or [],
        mobile=normalise_mobile(mobile) if mobile else "",
    )
    for org, role in memberships:
        Membership.objects.create(user=user, organisation=org, role=role)
    return user


@transaction.atomic
def user_disable(*, actor: audit.Actor, user: Any) -> None:
    """Disable an account; its sessions and API tokens stop working at once."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    AuthToken.objects.filter(user=user).delete()
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
    audit.record(actor=actor, action="user.disable", object_type="user", object_id=str(user.pk))


# --- Patients ----------------------------------------------------------------------------------


@dataclass
class IdentifierInput:
    authority: str
    kind: str
    value: str


@dataclass
class PatientInput:
    name: str
    sex: str | None = None
    birth_date: date | None = None
    id_number: str | None = None
    name_pinyin: str = ""
    mobile: str = ""
    address: str = ""
    address_division_code: str = ""
    home_organisation_id: uuid.UUID | None = None
    chronic_conditions: list[str] = field(default_factory=list)
    identifiers: list[IdentifierInput] = field(default_factory=list)


@dataclass(frozen=True)
class PatientCreateResult:
    patient: Patient
    created: bool


def _clean_demographics(
    *,
    name: str,
    sex: str | None,
    birth_date: date | None,
    id_number: str | None,
    mobile: str,
    address_division_code: str,
    chronic_conditions: list[str],
) -> dict[str, Any]:
    """Validate and normalise; raises ValidationFailed listing every bad field at once."""
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {"name": (name or "").strip()}
    if not cleaned["name"]:
        errors["name"] = _("A patient needs a name.")
    cleaned["id_number"] = None
    if id_number:
        try:
            rid = parse_resident_id(id_number)
        except IdentityError as exc:
            errors["id_number"] = str(exc)
        else:
            cleaned["id_number"] = rid.number
            if birth_date and birth_date != rid.birth_date:
                errors["birth_date"] = _(
                    "The birth date differs from the one in the resident ID number (%(date)s)."
                ) % {"date": rid.birth_date.isoformat()}
            if sex and sex != Sex.UNKNOWN and sex != rid.sex:
                errors["sex"] = _("The sex differs from the one the resident ID number encodes.")
            birth_date = birth_date or rid.birth_date
            sex = sex or rid.sex
    id_invalid = "id_number" in errors  # fixing the ID number may supply both
    if sex not in Sex.values and not id_invalid:
        errors.setdefault("sex", _("Give the sex: male, female or unknown."))
    if birth_date is None and not id_invalid:
        errors.setdefault("birth_date", _("Give a birth date or a resident ID number."))
    elif birth_date is not None and birth_date > timezone.localdate():
        errors["birth_date"] = _("The birth date is in the future.")
    cleaned["sex"], cleaned["birth_date"] = sex, birth_date
    cleaned["mobile"] = ""
    if mobile:
        try:
            cleaned["mobile"] = normalise_mobile(mobile)
        except IdentityError as exc:
            errors["mobile"] = str(exc)
    cleaned["address_division_code"] = address_division_code or ""
    if address_division_code:
        try:
            validate_division_code(address_division_code)
        except IdentityError as exc:
            errors["address_division_code"] = str(exc)
    codes = []
    for code in chronic_conditions or []:
        try:
            codes.append(normalise_icd10(code))
        except IdentityError as exc:
            errors["chronic_conditions"] = str(exc)
    cleaned["chronic_conditions"] = sorted(set(codes))
    if errors:
        raise ValidationFailed(_("Some patient details are not valid."), fields=errors)
    return cleaned


def pinyin_of(name: str) -> str:
    """Hanyu pinyin as written on documents: the surname, then the given name as one word
    (欧阳秀兰 → Ouyang Xiulan)."""
    name = name.strip()
    family, given = split_chinese_name(name)
    if family is None:
        return " ".join(part.capitalize() for part in lazy_pinyin(name) if part.strip())
    surname = "".join(lazy_pinyin(family)).capitalize()
    rest = "".join(lazy_pinyin("".join(given))).capitalize()
    return f"{surname} {rest}".strip()


def _home_organisation(principal: Principal, external_id: uuid.UUID | None) -> Organisation:
    if external_id is None:
        return principal.organisation
    allowed = principal.organisations_with(CLINICAL_ROLES)
    org = (
        Organisation.objects.filter(organisations_subtree_q(allowed))
        .filter(external_id=external_id, is_active=True)
        .first()
    )
    if org is None:
        raise ValidationFailed(
            _("The home organisation must be yours or one under it."),
            fields={"home_organisation": str(external_id)},
        )
    return org


def _require_clinical(principal: Principal, action: str) -> None:
    if principal.role not in CLINICAL_ROLES:
        audit.record(actor=principal.actor, action=action, outcome=AuditOutcome.DENIED)
        raise Forbidden(_("Only clinical staff may do this."), code="role")


def _check_identifiers(identifiers: list[IdentifierInput], patient: Patient | None) -> None:
    for ident in identifiers:
        if ident.kind not in IdentifierKind.values or not ident.authority or not ident.value:
            raise ValidationFailed(
                _("An identifier needs an assigning authority, a known kind and a value."),
                fields={"identifiers": f"{ident.authority}/{ident.kind}"},
            )
        clash = (
            PatientIdentifier.objects.filter(
                authority=ident.authority, kind=ident.kind, value=ident.value
            )
            .exclude(patient=patient)
            .exists()
            if patient
            else PatientIdentifier.objects.filter(
                authority=ident.authority, kind=ident.kind, value=ident.value
            ).exists()
        )
        if clash:
            raise Conflict(
                _("Identifier %(kind)s %(value)s of %(authority)s belongs to another patient.")
                % {"kind": ident.kind, "value": ident.value, "authority": ident.authority},
                code="identifier_taken",
            )


def patient_create(*, principal: Principal, data: PatientInput) -> PatientCreateResult:
    """Register a patient, or return the one already registered under the ID number.

    An existing record the caller cannot see yet is linked to the caller's organisation
    (a share with source "registration") only when the name matches too; a different name
    under the same ID number is a conflict for a person to resolve, and reveals nothing.
    """
    _require_clinical(principal, "patient.create")
    cleaned = _clean_demographics(
        name=data.name,
        sex=data.sex,
        birth_date=data.birth_date,
        id_number=data.id_number,
        mobile=data.mobile,
        address_division_code=data.address_division_code,
        chronic_conditions=data.chronic_conditions,
    )
    home = _home_organisation(principal, data.home_organisation_id)
    if cleaned["id_number"]:
        existing = _existing_by_id_number(principal, cleaned["id_number"], cleaned["name"])
        if existing is not None:
            return PatientCreateResult(existing, False)
    _check_identifiers(data.identifiers, None)
    try:
        with transaction.atomic():
            patient = Patient.objects.create(
                **cleaned,
                name_pinyin=data.name_pinyin.strip() or pinyin_of(cleaned["name"]),
                address=data.address.strip(),
                home_organisation=home,
                created_by=principal.user,
            )
            for ident in data.identifiers:
                PatientIdentifier.objects.create(
                    patient=patient,
                    authority=ident.authority,
                    kind=ident.kind,
                    value=ident.value,
                )
            audit.record(
                actor=principal.actor,
                action="patient.create",
                object_type="patient",
                object_id=patient.external_id,
                patient_id=patient.external_id,
                subject_organisation_id=home.pk,
            )
            events.publish("patient.created", {"patient": str(patient.external_id)})
    except IntegrityError:
        # A concurrent registration of the same ID number won the race: answer with it.
        if cleaned["id_number"]:
            existing = _existing_by_id_number(principal, cleaned["id_number"], cleaned["name"])
            if existing is not None:
                return PatientCreateResult(existing, False)
        raise Conflict(_("This patient was registered at the same moment; search again.")) from None
    return PatientCreateResult(patient, True)


def _existing_by_id_number(principal: Principal, id_number: str, name: str) -> Patient | None:
    existing = Patient.objects.filter(id_number=id_number).select_related("merged_into").first()
    if existing is None:
        return None
    while existing.merged_into is not None:
        existing = existing.merged_into
    if patients_visible_to(principal).filter(pk=existing.pk).exists():
        return access_patient(principal, existing.external_id, action="patient.create.existing")
    if existing.name != name:
        audit.record(
            actor=principal.actor,
            action="patient.create",
            outcome=AuditOutcome.DENIED,
            object_type="patient",
            patient_id=existing.external_id,
            subject_organisation_id=existing.home_organisation_id,
            detail={"reason": "id_number_registered_under_other_name"},
        )
        raise Conflict(
            _(
                "This resident ID number is registered under a different name. Check the ID "
                "card; if it is right, ask the coordinator to correct the record."
            ),
            code="id_number_name_mismatch",
        )
    with transaction.atomic():
        PatientShare.objects.create(
            patient=existing,
            organisation=principal.organisation,
            source="registration",
            created_by=principal.user,
        )
        audit.record(
            actor=principal.actor,
            action="patient.share.registration",
            object_type="patient",
            object_id=existing.external_id,
            patient_id=existing.external_id,
            subject_organisation_id=existing.home_organisation_id,
        )
    return access_patient(principal, existing.external_id, action="patient.create.existing")


UPDATABLE = (
    "name",
    "name_pinyin",
    "sex",
    "birth_date",
    "id_number",
    "mobile",
    "address",
    "address_division_code",
    "chronic_conditions",
)


def patient_update(
    *, principal: Principal, patient_id: uuid.UUID | str, changes: dict[str, Any]
) -> Patient:
    """Change demographics; the audit row names the fields changed, never their values."""
    _require_clinical(principal, "patient.update")
    unknown = sorted(set(changes) - set(UPDATABLE) - {"identifiers"})
    if unknown:
        raise ValidationFailed(
            _("These fields cannot be changed here."), fields={k: "read-only" for k in unknown}
        )
    # The gate runs outside the transaction so that a denial stays in the audit trail.
    patient = access_patient(principal, patient_id, action="patient.update")
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        merged = {name: getattr(patient, name) for name in UPDATABLE}
        merged.update({k: v for k, v in changes.items() if k in UPDATABLE})
        if "id_number" in changes and changes["id_number"] and "birth_date" not in changes:
            merged["birth_date"] = None
        if "id_number" in changes and changes["id_number"] and "sex" not in changes:
            merged["sex"] = None
        cleaned = _clean_demographics(
            name=merged["name"],
            sex=merged["sex"],
            birth_date=merged["birth_date"],
            id_number=merged["id_number"],
            mobile=merged["mobile"],
            address_division_code=merged["address_division_code"],
            chronic_conditions=merged["chronic_conditions"],
        )
        if cleaned["id_number"] and cleaned["id_number"] != patient.id_number:
            if (
                Patient.objects.filter(id_number=cleaned["id_number"])
                .exclude(pk=patient.pk)
                .exists()
            ):
                raise Conflict(
                    _("Another patient has this resident ID number; merge the two records."),
                    code="id_number_taken",
                )
        identifiers = [IdentifierInput(**i) for i in changes.get("identifiers", [])]
        _check_identifiers(identifiers, patient)
        changed = []
        for name, value in {
            **cleaned,
            "address": str(merged["address"]).strip(),
            "name_pinyin": str(merged["name_pinyin"]).strip(),
        }.items():
            if getattr(patient, name) != value:
                setattr(patient, name, value)
                changed.append(name)
        if "name" in changed and "name_pinyin" not in changes:
            patient.name_pinyin = pinyin_of(patient.name)
        patient.save()
        for ident in identifiers:
            PatientIdentifier.objects.get_or_create(
                patient=patient, authority=ident.authority, kind=ident.kind, value=ident.value
            )
            changed.append("identifiers")
        audit.record(
            actor=principal.actor,
            action="patient.update.fields",
            object_type="patient",
            object_id=patient.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={"fields": sorted(set(changed))},
        )
        if changed:
            events.publish(
                "patient.updated",
                {"patient": str(patient.external_id), "fields": sorted(set(changed))},
            )
    return patient


# --- Consent -----------------------------------------------------------------------------------


def consent_record(
    *,
    principal: Principal,
    patient_id: uuid.UUID | str,
    kind: str,
    method: str,
    organisation_id: uuid.UUID | None = None,
    note: str = "",
    granted_at: datetime | None = None,
) -> Consent:
    _require_clinical(principal, "consent.create")
    patient = access_patient(principal, patient_id, action="consent.create")
    errors = {}
    if kind not in ConsentKind.values:
        errors["kind"] = _("Unknown consent kind.")
    if method not in ConsentMethod.values:
        errors["method"] = _("Unknown way of recording consent.")
    organisation = None
    if organisation_id is not None:
        organisation = Organisation.objects.filter(external_id=organisation_id).first()
        if organisation is None:
            errors["organisation"] = _("No such organisation.")
    if kind == ConsentKind.SHARE_WITH_CENTRE and organisation is None:
        errors.setdefault("organisation", _("Name the centre the records may be shared with."))
    when = granted_at or timezone.now()
    if when > timezone.now() + timedelta(minutes=5):
        errors["granted_at"] = _("Consent cannot be recorded for the future.")
    if errors:
        raise ValidationFailed(_("The consent is not complete."), fields=errors)
    with transaction.atomic():
        consent = Consent.objects.create(
            patient=patient,
            kind=kind,
            method=method,
            organisation=organisation,
            note=note[:500],
            granted_at=when,
            recorded_by=principal.user,
            recorded_at_organisation=principal.organisation,
        )
        audit.record(
            actor=principal.actor,
            action="consent.create",
            object_type="consent",
            object_id=consent.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={"kind": kind},
        )
        events.publish(
            "consent.granted",
            {
                "patient": str(patient.external_id),
                "consent": str(consent.external_id),
                "kind": kind,
            },
        )
    return consent


def consent_revoke(
    *, principal: Principal, patient_id: uuid.UUID | str, consent_id: uuid.UUID | str, reason: str
) -> Consent:
    _require_clinical(principal, "consent.revoke")
    patient = access_patient(principal, patient_id, action="consent.revoke")
    try:
        key = uuid.UUID(str(consent_id))
    except ValueError as exc:
        raise NotFound(_("No such consent.")) from exc
    if not (reason or "").strip():
        raise ValidationFailed(_("Give the reason for revoking."), fields={"reason": "required"})
    with transaction.atomic():
        consent = (
            Consent.objects.select_for_update().filter(patient=patient, external_id=key).first()
        )
        if consent is None:
            raise NotFound(_("No such consent."))
        if consent.revoked_at is not None:
            raise Conflict(_("This consent was already revoked."), code="already_revoked")
        consent.revoked_at, consent.revoked_by = timezone.now(), principal.user
        consent.revoke_reason = reason.strip()[:500]
        consent.save(update_fields=["revoked_at", "revoked_by", "revoke_reason", "updated_at"])
        audit.record(
            actor=principal.actor,
            action="consent.revoke",
            object_type="consent",
            object_id=consent.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={"kind": consent.kind},
        )
        events.publish(
            "consent.revoked",
            {
                "patient": str(patient.external_id),
                "consent": str(consent.external_id),
                "kind": consent.kind,
            },
        )
    return consent


# --- Sharing and emergency access ---------------------------------------------------------------


@transaction.atomic
def patient_share_grant(
    *,
    actor: audit.Actor,
    patient: Patient,
    source: str,
    organisation: Organisation | None = None,
    user: Any | None = None,
    source_ref: str = "",
    expires_at: datetime | None = None,
) -> PatientShare:
    """Give an organisation or a user access to a patient outside its tree (a consult,
    a referral). Called by the workflows that create the care relationship."""
    share = PatientShare.objects.create(
        patient=patient,
        organisation=organisation,
        user=user,
        source=source,
        source_ref=source_ref,
        expires_at=expires_at,
        created_by_id=actor.user_id,
    )
    audit.record(
        actor=actor,
        action="patient.share",
        object_type="patient_share",
        object_id=share.external_id,
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
        detail={"source": source, "source_ref": source_ref},
    )
    return share


@dataclass(frozen=True)
class BreakGlassResult:
    patient: Patient
    expires_at: datetime | None  # None: the patient was already visible; no grant was needed


def break_glass_open(
    *,
    principal: Principal,
    reason: str,
    patient_id: uuid.UUID | str | None = None,
    id_number: str | None = None,
) -> BreakGlassResult:
    """Emergency access to one patient for ``HUIZHEN_BREAK_GLASS_HOURS``, audited as an
    emergency override and reported to the admins of both organisations."""
    _require_clinical(principal, "patient.break_glass")
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationFailed(
            _("State the emergency in at least 10 characters."), fields={"reason": reason}
        )
    query = Patient.objects.filter(merged_into__isnull=True)
    patient = None
    try:
        if patient_id:
            patient = query.filter(external_id=uuid.UUID(str(patient_id))).first()
        elif id_number:
            patient = query.filter(id_number=id_number.strip().upper()).first()
    except ValueError:
        patient = None
    if patient is None:
        audit.record(
            actor=principal.actor,
            action="patient.break_glass",
            outcome=AuditOutcome.DENIED,
            detail={"reason": "not_found"},
        )
        raise NotFound(_("No such patient."))
    if patients_visible_to(principal).filter(pk=patient.pk).exists():
        return BreakGlassResult(access_patient(principal, patient.external_id), None)
    expires = timezone.now() + timedelta(hours=settings.HUIZHEN_BREAK_GLASS_HOURS)
    with transaction.atomic():
        BreakGlassAccess.objects.create(
            user=principal.user,
            organisation=principal.organisation,
            patient=patient,
            reason=reason[:500],
            expires_at=expires,
        )
        audit.record(
            actor=principal.actor,
            action="patient.break_glass",
            outcome=AuditOutcome.EMERGENCY,
            object_type="patient",
            object_id=patient.external_id,
            patient_id=patient.external_id,
            subject_organisation_id=patient.home_organisation_id,
            detail={"expires_at": expires.isoformat()},
        )
        # The admins of the acting organisation and of every organisation the patient's
        # home organisation belongs to up the tree.
        above = [int(pk) for pk in patient.home_organisation.path.strip("/").split("/") if pk]
        admins = User.objects.filter(
            memberships__role=Role.ORG_ADMIN,
            memberships__is_active=True,
            memberships__organisation_id__in=[principal.organisation.pk, *above],
            is_active=True,
        ).distinct()
        for admin in admins:
            notify(
                user=admin,
                category="break_glass",
                title=_("Emergency access to a patient record"),
                body=_("%(user)s opened a record by emergency override until %(until)s.")
                % {
                    "user": principal.user.get_username(),
                    "until": timezone.localtime(expires).strftime("%Y-%m-%d %H:%M"),
                },
                data={"patient": str(patient.external_id), "user": principal.user.get_username()},
                channels=("push",),
            )
        events.publish(
            "patient.break_glass",
            {"patient": str(patient.external_id), "user": principal.user.get_username()},
        )
    return BreakGlassResult(access_patient(principal, patient.external_id), expires)
