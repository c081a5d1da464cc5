"""Practitioner (staff of the user's county community) and Organization (the directory)."""

from __future__ import annotations

from tests.factories import make_staff
from tests.fhir.conftest import entries, issue_codes, parse

LICENCE = "http://huizhen.example/fhir/sid/cn-practitioner-licence"


def test_practitioners_are_the_staff_of_the_county_community(community, fhir_get):
    doctor = make_staff(
        "li_daifu",
        community.ecg,
        "specialist",
        display_name="李明华",
        licence_number="110430000012345",
        professional_title="associate_chief",
    )
    bundle = parse(
        fhir_get("village_a", "Practitioner", {"identifier": f"{LICENCE}|110430000012345"})
    )
    (practitioner,) = entries(bundle)
    assert practitioner.id == str(doctor.staff.external_id)
    assert (practitioner.name[0].family, practitioner.name[0].given) == ("李", ["明华"])
    assert practitioner.qualification[0].code.coding[0].code == "associate_chief"
    assert practitioner.identifier[0].value == "110430000012345"

    names = {p.name[0].text for p in entries(parse(fhir_get("village_a", "Practitioner")))}
    assert "county_doctor" in names and "other_doctor" not in names
    assert parse(fhir_get("village_a", "Practitioner", {"name": "明华"})).total == 1

    outsider = fhir_get("other_doctor", f"Practitioner/{doctor.staff.external_id}")
    assert outsider.status_code == 404
    assert issue_codes(outsider) == ["not-found"]
    assert fhir_get("county_doctor", f"Practitioner/{doctor.staff.external_id}").status_code == 200


def test_organizations_carry_division_codes_facilities_and_ae_titles(community, fhir_get):
    bundle = parse(
        fhir_get(
            "village_a",
            "Organization",
            {"identifier": "http://huizhen.example/fhir/sid/dicom-ae-title|QSECG"},
        )
    )
    (ecg,) = entries(bundle)
    assert ecg.name == "心电中心"
    assert ecg.partOf.reference == f"Organization/{community.county.external_id}"
    systems = {(i.system.rsplit("/", 1)[-1], i.value) for i in ecg.identifier}
    assert {("cn-division-code", "431226"), ("dicom-ae-title", "QSECG")} <= systems
    assert parse(fhir_get("village_a", "Organization", {"identifier": "QSX"})).total == 1
    assert parse(fhir_get("village_a", "Organization", {"type": "village_clinic"})).total == 2
    children = parse(
        fhir_get(
            "village_a",
            "Organization",
            {"partof": f"Organization/{community.township.external_id}"},
        )
    )
    assert {o.name for o in entries(children)} == {"东山村卫生室", "石桥村卫生室"}
    county = parse(fhir_get("other_doctor", f"Organization/{community.county.external_id}"))
    assert county.name == "县医院"
    assert fhir_get("village_a", "Organization/nope").status_code == 404
