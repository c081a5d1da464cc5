"""Patient: create, read and search through the registry's gate, with the audit trail."""

from __future__ import annotations

from datetime import date

from registry.models import AuditEvent, Patient, PatientIdentifier
from tests.factories import resident_id
from tests.fhir.conftest import BASE, entries, issue_codes, parse

RESIDENT_ID = "http://huizhen.example/fhir/sid/cn-resident-id"
EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"


def patient_body(name: str, id_number: str | None = None, **extra) -> dict:
    body = {"resourceType": "Patient", "name": [{"text": name}], **extra}
    if id_number:
        body["identifier"] = [{"system": RESIDENT_ID, "value": id_number}]
    return body


def post(community, username: str, body: dict):
    return community.client(username).post(
        BASE + "Patient", body, format="json", HTTP_ACCEPT="application/fhir+json"
    )


def test_creating_a_patient_maps_names_identifiers_and_contacts(community):
    id_number = resident_id(date(1961, 7, 2), male=False)
    body = patient_body(
        "欧阳秀𠮷",  # a compound surname and a character outside the BMP (GB 18030)
        id_number,
        telecom=[{"system": "phone", "value": "+86 139 0000 1234", "use": "mobile"}],
        address=[
            {
                "text": "湖南省怀化市东山镇东山村3组",
                "extension": [
                    {
                        "url": "http://huizhen.example/fhir/StructureDefinition/"
                        "address-division-code",
                        "valueCode": "431226",
                    }
                ],
            }
        ],
    )
    body["identifier"].append(
        {
            "system": "urn:huizhen:authority:QSX",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "value": "MR-0042",
        }
    )
    response = post(community, "village_a", body)
    assert response.status_code == 201, response.json()
    patient = parse(response)
    assert response["Location"].endswith(f"/fhir/R4/Patient/{patient.id}")
    chinese, pinyin = patient.name
    assert (chinese.text, chinese.family, chinese.given) == ("欧阳秀𠮷", "欧阳", ["秀𠮷"])
    assert chinese.extension[0].url == EN_REPRESENTATION
    assert chinese.extension[0].valueCode == "IDE"
    assert pinyin.extension[0].valueCode == "ABC"
    assert pinyin.text.startswith("Ou")
    assert patient.gender == "female"  # from the ID number
    assert patient.birthDate == date(1961, 7, 2)
    systems = {i.system: i.value for i in patient.identifier}
    assert systems[RESIDENT_ID] == id_number
    assert systems["urn:huizhen:authority:QSX"] == "MR-0042"
    assert patient.telecom[0].value == "13900001234"
    assert patient.address[0].text == "湖南省怀化市东山镇东山村3组"
    assert patient.managingOrganization.reference == (
        f"Organization/{community.village_a.external_id}"
    )
    stored = Patient.objects.get(external_id=patient.id)
    assert (stored.name, stored.address_division_code) == ("欧阳秀𠮷", "431226")
    assert PatientIdentifier.objects.get(patient=stored).kind == "MR"
    assert AuditEvent.objects.filter(action="patient.create", patient_id=stored.external_id)


def test_a_known_resident_id_number_answers_200_with_the_existing_patient(community):
    body = patient_body("刘桂兰", resident_id(date(1948, 1, 9), male=False))
    first = post(community, "village_a", body)
    again = post(community, "village_a", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert parse(again).id == parse(first).id
    assert Patient.objects.filter(name="刘桂兰").count() == 1


def test_an_invalid_body_is_422_naming_the_elements(community):
    before = Patient.objects.count()
    response = post(
        community,
        "village_a",
        {"resourceType": "Patient", "birthDate": "1956-13-01", "favourite": 1, "name": [{}]},
    )
    assert response.status_code == 422
    outcome = parse(response)
    expressions = {e for issue in outcome.issue for e in issue.expression or []}
    assert {"Patient.birthDate", "Patient.favourite"} <= expressions

    valid = resident_id(date(1956, 3, 14), male=False)
    typo = valid[:17] + ("0" if valid[17] != "0" else "1")
    wrong_number = post(community, "village_a", patient_body("王芳", typo))
    assert wrong_number.status_code == 422
    assert parse(wrong_number).issue[0].expression == ["Patient.identifier"]

    other_gender = post(community, "village_a", patient_body("王芳", gender="other"))
    assert other_gender.status_code == 422
    assert "Patient.gender" in {e for i in parse(other_gender).issue for e in i.expression}

    unknown_system = post(
        community,
        "village_a",
        {**patient_body("王芳"), "identifier": [{"system": "urn:x", "value": "1"}]},
    )
    assert unknown_system.status_code == 422
    assert parse(unknown_system).issue[0].expression == ["Patient.identifier[0].system"]

    not_a_patient = post(community, "village_a", {"resourceType": "Observation"})
    assert not_a_patient.status_code == 422
    assert Patient.objects.count() == before


def test_a_role_that_may_not_register_gets_403_and_nothing_is_created(community):
    before = Patient.objects.count()
    response = post(community, "county_admin", patient_body("王芳", gender="female"))
    assert response.status_code == 403
    assert issue_codes(response) == ["forbidden"]
    assert Patient.objects.count() == before


def test_read_goes_through_the_gate_and_is_audited(community, patient_factory, fhir_get):
    patient = patient_factory(home_organisation=community.village_a, name="张桂兰")
    response = fhir_get("township_doctor", f"Patient/{patient.external_id}")
    assert response.status_code == 200
    resource = parse(response)
    assert resource.name[0].family == "张"
    assert AuditEvent.objects.filter(
        action="patient.read", outcome="success", patient_id=patient.external_id
    ).exists()


def test_another_organisation_gets_404_and_an_empty_bundle_and_the_denial_is_audited(
    community, patient_factory, fhir_get
):
    patient = patient_factory(home_organisation=community.village_a)
    response = fhir_get("other_doctor", f"Patient/{patient.external_id}")
    assert response.status_code == 404
    assert issue_codes(response) == ["not-found"]
    denied = AuditEvent.objects.get(action="patient.read", outcome="denied")
    assert denied.patient_id == patient.external_id
    assert denied.actor_username == "other_doctor"
    # A sibling village clinic is outside the patient's tree too.
    assert fhir_get("village_b", f"Patient/{patient.external_id}").status_code == 404

    search = fhir_get(
        "other_doctor", "Patient", {"identifier": f"{RESIDENT_ID}|{patient.id_number}"}
    )
    assert search.status_code == 200
    bundle = parse(search)
    assert (bundle.total, bundle.entry) == (0, None)

    missing = fhir_get("other_doctor", "Patient/not-a-uuid")
    assert missing.status_code == 404


def test_search_by_identifier_name_birthdate_gender_and_phone(community, patient_factory, fhir_get):
    wang = patient_factory(
        home_organisation=community.village_a, name="王秀英", name_pinyin="Wang Xiuying"
    )
    li = patient_factory(
        home_organisation=community.village_b,
        name="李建国",
        sex="male",
        birth_date=date(1970, 5, 1),
        mobile="13700000001",
    )
    PatientIdentifier.objects.create(patient=li, authority="QSX", kind="MR", value="MR9")

    def ids(params):
        response = fhir_get("township_doctor", "Patient", params)
        assert response.status_code == 200, response.json()
        return {r.id for r in entries(parse(response))}

    both = {str(wang.external_id), str(li.external_id)}
    assert ids({}) == both
    assert ids({"identifier": f"{RESIDENT_ID}|{wang.id_number}"}) == {str(wang.external_id)}
    assert ids({"identifier": wang.id_number.lower()}) == {str(wang.external_id)}
    assert ids({"identifier": "urn:huizhen:authority:QSX|MR9"}) == {str(li.external_id)}
    assert ids({"identifier": "urn:huizhen:authority:OTHER|MR9"}) == set()
    assert ids({"name": "秀英"}) == {str(wang.external_id)}
    assert ids({"name": "xiuying"}) == {str(wang.external_id)}
    assert ids({"name:exact": "王秀"}) == set()
    assert ids({"name": "王秀英,李建国"}) == both
    assert ids({"birthdate": "1956-03-14"}) == {str(wang.external_id)}
    assert ids({"birthdate": "1970"}) == {str(li.external_id)}
    assert ids({"birthdate": "ge1960-01-01"}) == {str(li.external_id)}
    assert ids({"birthdate": ["ge1950", "lt1960"]}) == {str(wang.external_id)}
    assert ids({"gender": "male"}) == {str(li.external_id)}
    assert ids({"phone": "+8613700000001"}) == {str(li.external_id)}
    assert ids({"_id": str(li.external_id)}) == {str(li.external_id)}

    searches = AuditEvent.objects.filter(action="patient.search", actor_username="township_doctor")
    details = [row.detail for row in searches]
    assert {"criteria": ["birthdate"], "interface": "fhir"} in details
    assert all(wang.id_number not in str(d) and "王秀英" not in str(d) for d in details)


def test_search_pages_with_count_and_offset(community, patient_factory, fhir_get):
    for _ in range(5):
        patient_factory(home_organisation=community.village_a)
    first = parse(fhir_get("village_a", "Patient", {"_count": "2"}))
    assert (first.total, len(first.entry)) == (5, 2)
    relations = {link.relation: link.url for link in first.link}
    assert "_offset=2" in relations["next"] and "previous" not in relations
    seen = [e.fullUrl for e in first.entry]
    url = relations["next"]
    while url:
        page = parse(fhir_get("village_a", url.split(BASE, 1)[1]))
        seen += [e.fullUrl for e in page.entry or []]
        url = {link.relation: link.url for link in page.link}.get("next")
    assert len(set(seen)) == 5
    assert all(u.startswith("http://testserver/fhir/R4/Patient/") for u in seen)
    counted = parse(fhir_get("village_a", "Patient", {"_count": "0"}))
    assert (counted.total, counted.entry) == (5, None)


def test_an_identifier_of_another_patient_is_a_409_duplicate(community, patient_factory):
    owner = patient_factory(home_organisation=community.village_a)
    PatientIdentifier.objects.create(patient=owner, authority="QSX", kind="MR", value="MR1")
    body = patient_body("赵敏", gender="female", birthDate="1980-02-03")
    body["identifier"] = [{"system": "urn:huizhen:authority:QSX", "value": "MR1"}]
    response = post(community, "village_a", body)
    assert response.status_code == 409
    assert issue_codes(response) == ["duplicate"]
    assert not Patient.objects.filter(name="赵敏").exists()


def test_a_patient_created_over_fhir_reads_back_identically(community):
    body = patient_body(
        "司马光",
        gender="male",
        birthDate="1990-10-17",
        managingOrganization={"reference": f"Organization/{community.village_a.external_id}"},
    )
    created = post(community, "township_doctor", body)
    assert created.status_code == 201, created.json()
    resource = parse(created)
    assert (resource.name[0].family, resource.name[0].given) == ("司马", ["光"])
    read = community.client("township_doctor").get(BASE + f"Patient/{resource.id}")
    assert read.json() == {**created.json(), "meta": read.json()["meta"]}
    assert resource.managingOrganization.display == "东山村卫生室"
