"""Factories for the registry: organisations, staff and patients with valid identifiers."""

from __future__ import annotations

import itertools
from datetime import date

import factory

from registry import services
from registry.identity import id_check_character
from registry.models import Organisation, Patient

_sequence = itertools.count(1)


def resident_id(birth: date, *, male: bool, division: str = "431226") -> str:
    seq = next(_sequence) % 499 * 2 + (1 if male else 0)
    first17 = f"{division}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_character(first17)


def make_org(name: str, kind: str, parent: Organisation | None = None, **kw) -> Organisation:
    return services.organisation_create(
        name=name, kind=kind, division_code="431226", parent=parent, **kw
    )


def make_staff(username: str, org: Organisation, role: str, **kw):
    return services.staff_create(
        username=username,
        password=kw.pop("password", "pw-" + username),
        display_name=kw.pop("display_name", username),
        memberships=[(org, role)],
        **kw,
    )


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    name = factory.Iterator(["王秀英", "李建国", "张桂兰", "刘德福"])
    sex = "female"
    birth_date = date(1956, 3, 14)
    id_number = factory.LazyAttribute(lambda o: resident_id(o.birth_date, male=o.sex == "male"))
    mobile = factory.Sequence(lambda n: f"138{n:08d}")
    home_organisation = None
