from datetime import date

from registry.models import AuditEvent, Patient, PatientShare
from tests.factories import resident_id

URL = "/api/v1/patients/"


def test_village_doctor_registers_a_patient_and_finds_it_by_id_number(community):
    client = community.client("village_a")
    id_number = resident_id(date(1952, 5, 3), male=True)
    created = client.post(
        URL,
        {
            "name": "王德福",
            "id_number": id_number,
            "mobile": "+86 139 1234 5678",
            "chronic_conditions": ["i10"],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["birth_date"] == "1952-05-03"
    assert body["sex"] == "male"  # taken from the ID number
    assert body["mobile"] == "13912345678"
    assert body["name_pinyin"] == "Wang Defu"
    assert body["chronic_conditions"] == ["I10"]
    assert body["home_organisation"]["id"] == str(community.village_a.external_id)

    found = client.get(URL, {"id_number": id_number.lower()}).json()
    assert [p["id"] for p in found["results"]] == [body["id"]]
    assert AuditEvent.objects.filter(action="patient.create", patient_id=body["id"]).exists()


def test_registering_a_known_id_number_returns_the_existing_patient(community):
    client = community.client("village_a")
    payload = {"name": "刘桂兰", "id_number": resident_id(date(1948, 1, 9), male=False)}
    first = client.post(URL, payload, format="json")
    again = client.post(URL, payload, format="json")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Patient.objects.filter(id_number=payload["id_number"]).count() == 1


def test_a_known_id_number_from_another_clinic_links_instead_of_duplicating(community):
    payload = {"name": "刘桂兰", "id_number": resident_id(date(1948, 1, 9), male=False)}
    first = community.client("village_a").post(URL, payload, format="json").json()
    second = community.client("village_b").post(URL, payload, format="json")
    assert second.status_code == 200
    assert second.json()["id"] == first["id"]
    assert PatientShare.objects.filter(
        patient__external_id=first["id"], organisation=community.village_b, source="registration"
    ).exists()


def test_a_known_id_number_under_another_name_is_a_conflict_that_reveals_nothing(community):
    id_number = resident_id(date(1948, 1, 9), male=False)
    community.client("village_a").post(
        URL, {"name": "刘桂兰", "id_number": id_number}, format="json"
    )
    response = community.client("village_b").post(
        URL, {"name": "张桂兰", "id_number": id_number}, format="json"
    )
    assert response.status_code == 409
    assert "刘桂兰" not in response.content.decode()
    assert Patient.objects.filter(id_number=id_number).count() == 1


def test_invalid_details_are_refused_field_by_field_and_nothing_is_stored(community):
    response = community.client("village_a").post(
        URL,
        {
            "name": "赵强",
            "id_number": "110105194912310021",
            "mobile": "12800138000",
            "chronic_conditions": ["hypertension"],
        },
        format="json",
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"id_number", "mobile", "chronic_conditions"}
    assert not Patient.objects.exists()


def test_sex_and_birth_date_are_cross_checked_with_the_id_number(community):
    response = community.client("village_a").post(
        URL,
        {
            "name": "赵强",
            "id_number": "11010519491231002X",
            "sex": "male",
            "birth_date": "1950-01-01",
        },
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"sex", "birth_date"}


def test_probable_matches_find_the_same_person_registered_without_id(community, patient_factory):
    existing = patient_factory(
        name="周玉梅",
        birth_date=date(1960, 7, 1),
        mobile="13700001111",
        id_number=None,
        home_organisation=community.village_a,
    )
    patient_factory(
        name="周玉梅", birth_date=date(1971, 2, 2), home_organisation=community.village_a
    )
    patient_factory(
        name="周玉梅", birth_date=date(1960, 7, 1), home_organisation=community.other_county
    )
    response = community.client("village_a").get(
        URL + "probable-matches/",
        {"name": "周玉梅", "birth_date": "1960-07-01", "mobile": "13700001111"},
    )
    assert response.status_code == 200
    matches = response.json()
    assert matches[0]["patient"]["id"] == str(existing.external_id)
    assert matches[0]["score"] == 3
    assert len(matches) == 2  # the other county's patient is not shown


def test_update_validates_and_audits(community, patient_factory):
    patient = patient_factory(home_organisation=community.village_a)
    client = community.client("village_a")
    url = f"{URL}{patient.external_id}/"
    bad = client.patch(url, {"mobile": "123"}, format="json")
    assert bad.status_code == 400
    ok = client.patch(url, {"mobile": "13512345678", "address": "东山村3组"}, format="json")
    assert ok.status_code == 200
    patient.refresh_from_db()
    assert (patient.mobile, patient.address) == ("13512345678", "东山村3组")
    assert AuditEvent.objects.filter(
        action="patient.update", patient_id=patient.external_id
    ).exists()
