"""Load the demo county medical community. Running it again creates nothing new."""

from __future__ import annotations

import os
import random
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from registry import audit, services
from registry.demo import demo_seeders
from registry.demo.data import (
    COUNTY_DIVISION_CODE,
    DEMO_MODALITY_AES,
    GIVEN_FEMALE,
    GIVEN_MALE,
    MOBILE_PREFIXES,
    ORGANISATIONS,
    SURNAMES,
    TOWNSHIPS,
    demo_logins,
)
from registry.identity import id_check_character
from registry.models import (
    DicomApplicationEntity,
    Membership,
    Organisation,
    Patient,
    PatientIdentifier,
)

User = get_user_model()
DEFAULT_PASSWORD = "huizhen-demo"  # noqa: S105 - documented demo password
PATIENT_COUNT = 200


def demo_password() -> str:
    return os.environ.get("HUIZHEN_DEMO_PASSWORD") or DEFAULT_PASSWORD


class Command(BaseCommand):
    help = "Create the demo county medical community, its staff and 200 patients (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            orgs = self._organisations()
            created_users = self._staff(orgs)
            created_patients = self._patients(orgs)
            for seeder in demo_seeders():
                seeder(orgs)
            if created_users or created_patients:
                audit.record(
                    actor=audit.Actor(user_id=None, username="seed_demo"),
                    action="demo.seeded",
                    detail={"staff": created_users, "patients": created_patients},
                )
        self.stdout.write(
            f"Demo data ready: {len(orgs)} organisations, {created_users} new staff accounts, "
            f"{created_patients} new patients."
        )

    def _org(self, key: str, name: str, kind: str, parent: Organisation | None, **kw: Any):
        existing = Organisation.objects.filter(name=name, kind=kind).first()
        if existing:
            return existing
        return services.organisation_create(
            name=name, kind=kind, division_code=COUNTY_DIVISION_CODE, parent=parent, **kw
        )

    def _organisations(self) -> dict[str, Organisation]:
        orgs: dict[str, Organisation] = {}
        for key, name, kind, parent, offered, ae_title, facility in ORGANISATIONS:
            orgs[key] = self._org(
                key,
                name,
                kind,
                orgs.get(parent) if parent else None,
                services=offered,
                ae_titles=[ae_title],
                hl7_facilities=[facility],
            )
        for township, stem, villages in TOWNSHIPS:
            centre = self._org(
                township,
                f"{stem}卫生院",
                "township_centre",
                orgs["county"],
                services=["general_medicine", "lab"],
                ae_titles=[f"{township.upper()}_THC"[:16]],
                hl7_facilities=[f"{township.upper()}_THC"],
            )
            orgs[f"township:{township}"] = centre
            for title in DEMO_MODALITY_AES.get(township, []):
                DicomApplicationEntity.objects.get_or_create(
                    ae_title=title, defaults={"organisation": centre, "host": "127.0.0.1"}
                )
            for village, village_name in villages:
                orgs[f"village:{village}"] = self._org(
                    village, f"{stem}{village_name}卫生室", "village_clinic", centre
                )
        return orgs

    def _staff(self, orgs: dict[str, Organisation]) -> int:
        password = demo_password()
        created = 0
        for index, login in enumerate(demo_logins()):
            if User.objects.filter(username=login.username).exists():
                continue
            user = services.staff_create(
                username=login.username,
                password=password,
                display_name=login.display_name,
                memberships=[(orgs[login.organisation], login.role)],
                licence_number=f"1104312260{index:05d}",
                professional_title=login.professional_title,
                specialties=login.specialties,
                mobile=f"139{index:08d}",
                is_staff=login.role == "system_admin",
            )
            if login.is_superuser:
                user.is_superuser = True
                user.save(update_fields=["is_superuser"])
            created += 1
        return created

    def _patients(self, orgs: dict[str, Organisation]) -> int:
        if Patient.objects.filter(id_number__startswith=COUNTY_DIVISION_CODE).count() >= (
            PATIENT_COUNT
        ):
            return 0
        rng = random.Random(20261201)  # noqa: S311 - demo data, reproducible on purpose
        clinics = [org for key, org in orgs.items() if key.startswith("village:")]
        creators = {
            m.organisation_id: m.user
            for m in Membership.objects.filter(role="village_doctor").select_related("user")
        }
        existing = set(Patient.objects.values_list("id_number", flat=True))
        created = 0
        for n in range(PATIENT_COUNT):
            male = n % 2 == 0
            birth = date(1938, 1, 1) + timedelta(days=rng.randrange(0, 365 * 62))
            sequence = rng.randrange(0, 499) * 2 + (1 if male else 0)
            first17 = f"{COUNTY_DIVISION_CODE}{birth:%Y%m%d}{sequence:03d}"
            id_number = first17 + id_check_character(first17)
            if id_number in existing:
                continue
            name = rng.choice(SURNAMES) + rng.choice(GIVEN_MALE if male else GIVEN_FEMALE)
            clinic = clinics[n % len(clinics)]
            age = (date(2026, 12, 1) - birth).days // 365
            conditions = []
            if rng.random() < min(0.75, age / 100):
                conditions.append("I10")
            if rng.random() < 0.25:
                conditions.append("E11.9")
            township = clinic.parent
            patient = Patient.objects.create(
                name=name,
                name_pinyin=services.pinyin_of(name),
                sex="male" if male else "female",
                birth_date=birth,
                id_number=id_number,
                mobile=rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}",
                address=f"{clinic.name.removesuffix('卫生室')}{rng.randrange(1, 9)}组",
                address_division_code=COUNTY_DIVISION_CODE,
                home_organisation=clinic,
                chronic_conditions=conditions,
                created_by=creators.get(clinic.pk),
            )
            PatientIdentifier.objects.create(
                patient=patient,
                authority=township.hl7_facilities.first().code if township else "COUNTY_HOSP",
                kind="MR",
                value=f"MR{n + 1:06d}",
            )
            existing.add(id_number)
            created += 1
        return created
