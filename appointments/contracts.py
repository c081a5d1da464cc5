"""Family-doctor contracts (家庭医生签约): signed online by the patient with an SMS code,
yearly renewal reminders, and coverage of the key groups per organisation.

The registry's ``ConsentKind`` has no contract kind, and ``Consent.recorded_by`` must be a
staff user, which a portal signature does not have; the contract, with its SMS confirmation
and timestamps, is therefore the consent record here, and every step is in the audit trail.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import audit, notifications, sms
from registry.access import Principal, organisations_subtree_q
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.models import Organisation, Patient

from .chronic_models import Contract, ContractStatus, DoctorTeam, ServicePackage

MAX_ATTEMPTS = 5


def _hash(contract_pk: int, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"contract:{contract_pk}:{code}".encode(), hashlib.sha256).hexdigest()


def teams_for_patient(patient: Patient) -> list[DoctorTeam]:
    """Active teams of the patient's home organisation and the organisations above it."""
    path = patient.home_organisation.path
    teams = DoctorTeam.objects.filter(is_active=True).select_related(
        "organisation", "village_doctor", "township_doctor", "specialist"
    )
    return [t for t in teams if path.startswith(t.organisation.path)]


def packages_for_patient(patient: Patient) -> list[ServicePackage]:
    path = patient.home_organisation.path
    packages = ServicePackage.objects.filter(is_active=True).select_related("organisation")
    return [p for p in packages if p.organisation is None or path.startswith(p.organisation.path)]


def _by_id(items: list[Any], value: str, what: str) -> Any:
    for item in items:
        if str(item.external_id) == str(value):
            return item
    raise NotFound(_("No such %(what)s.") % {"what": what})


@transaction.atomic
def contract_start(
    *, patient: Patient, team_id: str, package_id: str, actor: audit.Actor
) -> Contract:
    """Step 1: the patient chooses a team and a package; a code goes to their mobile.
    Precondition: ``patient`` is the signed-in portal patient."""
    team = _by_id(teams_for_patient(patient), team_id, _("team"))
    package = _by_id(packages_for_patient(patient), package_id, _("package"))
    if not patient.mobile:
        raise ValidationFailed(_("A mobile number is needed to sign."), fields={"mobile": ""})
    today = timezone.localdate()
    active = Contract.objects.filter(patient=patient, status=ContractStatus.ACTIVE).first()
    starts_on = today if active is None or active.ends_on <= today else active.ends_on
    Contract.objects.filter(patient=patient, status=ContractStatus.PENDING).delete()
    contract = Contract.objects.create(
        patient=patient,
        team=team,
        package=package,
        starts_on=starts_on,
        ends_on=_one_year_after(starts_on),
    )
    code = f"{secrets.randbelow(10**6):06d}"
    contract.code_hash = _hash(contract.pk, code)
    contract.code_expires_at = timezone.now() + timedelta(minutes=10)
    contract.save(update_fields=["code_hash", "code_expires_at"])
    text = _("Huizhen: your code to sign with family-doctor team %(team)s is %(code)s.") % {
        "team": team.name,
        "code": code,
    }
    transaction.on_commit(
        lambda: sms.send(
            sms.SmsMessage(mobile=patient.mobile, text=text, reference=f"contract-{contract.pk}")
        )
    )
    audit.record(
        actor=actor,
        action="contract.start",
        object_type="contract",
        object_id=str(contract.external_id),
        patient_id=patient.external_id,
        subject_organisation_id=patient.home_organisation_id,
    )
    return contract


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def contract_confirm(
    *, patient: Patient, contract_id: str, code: str, actor: audit.Actor
) -> Contract:
    """Step 2: the code from the SMS signs the contract; a current contract (if any) ends
    when this one starts (renewal). Five wrong codes void the request."""
    with transaction.atomic():
        contract = (
            Contract.objects.select_for_update()
            .filter(patient=patient, external_id=_uuid(contract_id), status=ContractStatus.PENDING)
            .first()
        )
        if contract is None:
            raise NotFound(_("No contract is waiting to be signed."))
        ok = hmac.compare_digest(contract.code_hash, _hash(contract.pk, (code or "").strip()))
        expired = contract.code_expires_at is None or contract.code_expires_at < timezone.now()
        if not ok or expired:
            contract.failed_attempts += 1
            contract.save(update_fields=["failed_attempts"])
            if contract.failed_attempts >= MAX_ATTEMPTS or expired:
                contract.delete()
            failed = True
        else:
            failed = False
            Contract.objects.filter(patient=patient, status=ContractStatus.ACTIVE).update(
                status=ContractStatus.ENDED, updated_at=timezone.now()
            )
            contract.status = ContractStatus.ACTIVE
            contract.signed_at = timezone.now()
            contract.code_hash = ""
            try:
                with transaction.atomic():
                    contract.save()
            except IntegrityError:
                raise Conflict(_("A contract is already signed."), code="already_signed") from None
            audit.record(
                actor=actor,
                action="contract.sign",
                object_type="contract",
                object_id=str(contract.external_id),
                patient_id=patient.external_id,
                subject_organisation_id=patient.home_organisation_id,
                detail={"team": str(contract.team.external_id), "method": "sms_code"},
            )
    if failed:
        audit.record(
            actor=actor,
            action="contract.sign",
            outcome="denied",
            object_type="contract",
            object_id=str(contract_id)[:64],
            patient_id=patient.external_id,
        )
        raise ValidationFailed(_("The code is wrong or has expired."), fields={"code": "wrong"})
    return contract


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def contract_current(patient: Patient) -> Contract | None:
    return (
        Contract.objects.filter(patient=patient, status=ContractStatus.ACTIVE)
        .select_related("team", "package")
        .first()
    )


def renewal_days() -> int:
    return int(getattr(settings, "HUIZHEN_CONTRACT_RENEWAL_DAYS", 30))


def contracts_remind_renewal(*, today: date | None = None) -> int:
    """Periodic (daily): SMS each patient whose contract ends within the renewal window, once
    per contract-year (the contract's end date is stamped before the SMS is queued)."""
    today = today or timezone.localdate()
    horizon = today + timedelta(days=renewal_days())
    ids = list(
        Contract.objects.filter(
            status=ContractStatus.ACTIVE, ends_on__lte=horizon, ends_on__gte=today
        )
        .exclude(renewal_reminded_for=F("ends_on"))
        .values_list("pk", flat=True)[:1000]
    )
    sent = 0
    for pk in ids:
        with transaction.atomic():
            claimed = (
                Contract.objects.filter(pk=pk, status=ContractStatus.ACTIVE)
                .filter(
                    Q(renewal_reminded_for__isnull=True) | ~Q(renewal_reminded_for=F("ends_on"))
                )
                .update(renewal_reminded_for=F("ends_on"))
            )
            if not claimed:
                continue
            contract = Contract.objects.select_related("patient", "team").get(pk=pk)
            notifications.notify(
                patient=contract.patient,
                category="contract.renewal",
                title=_("Family-doctor contract renewal"),
                body=_(
                    "Your family-doctor contract with %(team)s ends on %(day)s. "
                    "Renew it in the patient portal."
                )
                % {"team": contract.team.name, "day": contract.ends_on.isoformat()},
                data={"contract": str(contract.external_id)},
                channels=("sms",),
            )
            sent += 1
    return sent


# --- coverage --------------------------------------------------------------------------------

KEY_GROUPS = ("aged_65_plus", "hypertension", "diabetes")
HYPERTENSION_PREFIXES = ("I10", "I11", "I12", "I13", "I15")
DIABETES_PREFIXES = ("E11",)


@dataclass(frozen=True)
class CoverageRow:
    organisation: Organisation
    group: str
    people: int
    contracted: int
    target_percent: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.contracted / self.people, 1) if self.people else 0.0

    @property
    def meets_target(self) -> bool:
        return self.people > 0 and self.percent >= self.target_percent


def target_percent() -> int:
    return int(getattr(settings, "HUIZHEN_CONTRACT_TARGET_PERCENT", 70))


def _in_group(patient: Patient, group: str, today: date) -> bool:
    codes = [str(c).upper() for c in patient.chronic_conditions or []]
    if group == "aged_65_plus":
        b = patient.birth_date
        return (today.year - b.year - ((today.month, today.day) < (b.month, b.day))) >= 65
    prefixes = HYPERTENSION_PREFIXES if group == "hypertension" else DIABETES_PREFIXES
    return any(c.startswith(p) for c in codes for p in prefixes)


def coverage(*, principal: Principal, today: date | None = None) -> list[CoverageRow]:
    """Per organisation the principal manages (and each organisation below it): people in
    each key group and how many hold an active contract."""
    from .access import MANAGER_ROLES

    today = today or timezone.localdate()
    roots = principal.organisations_with(MANAGER_ROLES | {"doctor", "village_doctor"})
    if not roots:
        audit.record(actor=principal.actor, action="contract.coverage", outcome="denied")
        raise Forbidden(_("Your role may not see coverage."), code="role")
    orgs = list(
        Organisation.objects.filter(organisations_subtree_q(roots, "path")).order_by("path")
    )
    patients = Patient.objects.filter(
        organisations_subtree_q(roots, "home_organisation__path"), merged_into__isnull=True
    ).select_related("home_organisation")
    contracted = set(
        Contract.objects.filter(status=ContractStatus.ACTIVE, patient__in=patients).values_list(
            "patient_id", flat=True
        )
    )
    counts: dict[tuple[int, str], list[int]] = {}
    for patient in patients.only(
        "id", "birth_date", "chronic_conditions", "home_organisation__path"
    ):
        for org in orgs:
            if not patient.home_organisation.path.startswith(org.path):
                continue
            for group in KEY_GROUPS:
                if _in_group(patient, group, today):
                    row = counts.setdefault((org.pk, group), [0, 0])
                    row[0] += 1
                    row[1] += patient.pk in contracted
    target = target_percent()
    rows = [
        CoverageRow(org, group, *counts.get((org.pk, group), [0, 0]), target_percent=target)
        for org in orgs
        for group in KEY_GROUPS
    ]
    audit.record(actor=principal.actor, action="contract.coverage", object_type="coverage")
    return rows


def coverage_csv(rows: list[CoverageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "organisation_id",
            "organisation",
            "group",
            "people",
            "contracted",
            "percent",
            "target_percent",
            "meets_target",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.organisation.external_id,
                r.organisation.name,
                r.group,
                r.people,
                r.contracted,
                f"{r.percent:.1f}",
                r.target_percent,
                "yes" if r.meets_target else "no",
            ]
        )
    return out.getvalue()
