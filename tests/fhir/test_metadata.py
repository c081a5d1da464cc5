"""The CapabilityStatement, authentication and the errors every interaction shares."""

from __future__ import annotations

from rest_framework.test import APIClient

from tests.fhir.conftest import BASE, issue_codes, parse


def test_metadata_needs_no_sign_in_and_validates(db):
    response = APIClient().get(BASE + "metadata")
    assert response.status_code == 200
    statement = parse(response)
    assert statement.fhirVersion == "4.0.1"
    assert "application/fhir+json" in statement.format
    rest = statement.rest[0]
    assert rest.mode == "server"
    assert rest.security.service[0].text == "Bearer token"
    served = {r.type: r for r in rest.resource}
    assert set(served) == {
        "Patient",
        "Practitioner",
        "Organization",
        "ImagingStudy",
        "ServiceRequest",
        "DiagnosticReport",
        "Appointment",
        "Observation",
        "Schedule",
        "Slot",
    }
    assert [i.code for i in served["Appointment"].interaction] == [
        "read",
        "search-type",
        "create",
    ]
    assert [i.code for i in served["Patient"].interaction] == ["read", "search-type", "create"]
    assert "create" not in [i.code for i in served["ImagingStudy"].interaction]
    patient_params = {p.name: p.type for p in served["Patient"].searchParam}
    assert patient_params == {
        "_id": "token",
        "identifier": "token",
        "name": "string",
        "birthdate": "date",
        "gender": "token",
        "phone": "token",
    }
    assert {p.name for p in served["ImagingStudy"].searchParam} >= {
        "patient",
        "identifier",
        "modality",
        "started",
    }


def test_without_credentials_every_resource_answers_401(db):
    client = APIClient()
    for path in ("Patient", "Patient/00000000-0000-0000-0000-000000000000", "ImagingStudy"):
        response = client.get(BASE + path)
        assert response.status_code == 401, path
        assert issue_codes(response) == ["login"]
        assert response["WWW-Authenticate"].startswith("Bearer")
    created = client.post(BASE + "Patient", {"resourceType": "Patient"}, format="json")
    assert created.status_code == 401


def test_a_bearer_token_from_the_api_works(community):
    client = APIClient()
    token = client.post(
        "/api/v1/auth/token/", {"username": "village_a", "password": "pw-village_a"}
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(BASE + "Patient", HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200
    assert parse(response).type == "searchset"


def test_an_unknown_search_parameter_is_a_400_unless_lenient(fhir_get):
    response = fhir_get("village_a", "Patient", {"favourite_colour": "blue"})
    assert response.status_code == 400
    assert issue_codes(response) == ["invalid"]
    assert "favourite_colour" in parse(response).issue[0].diagnostics
    lenient = fhir_get(
        "village_a", "Patient", {"favourite_colour": "blue"}, HTTP_PREFER="handling=lenient"
    )
    assert lenient.status_code == 200
    assert "favourite_colour" not in parse(lenient).link[0].url


def test_malformed_values_and_modifiers_are_400(fhir_get):
    for params in (
        {"birthdate": "14/03/1956"},
        {"birthdate": "1956-02-30"},
        {"_count": "1000"},
        {"_offset": "-1"},
        {"gender:exact": "male"},
        {"phone": "12345"},
        {"_format": "xml"},
    ):
        response = fhir_get("village_a", "Patient", params)
        assert response.status_code == 400, params
        assert issue_codes(response) == ["invalid"], params


def test_an_unserved_resource_type_is_a_404_outcome(fhir_get):
    response = fhir_get("village_a", "MedicationRequest")
    assert response.status_code == 404
    assert issue_codes(response) == ["not-supported"]


def test_only_fhir_json_is_served(fhir_get):
    response = fhir_get("village_a", "Patient", HTTP_ACCEPT="application/fhir+xml")
    assert response.status_code == 406
    assert issue_codes(response) == ["not-supported"]
    plain = fhir_get("village_a", "Patient", HTTP_ACCEPT="application/json")
    assert plain.status_code == 200


def test_a_method_a_type_does_not_offer_is_405(community):
    response = community.client("county_doctor").post(
        BASE + "Organization", {"resourceType": "Organization"}, format="json"
    )
    assert response.status_code == 405
    assert issue_codes(response) == ["not-supported"]


def test_a_signed_in_session_works_and_a_foreign_organisation_header_is_403(community):
    client = APIClient()
    client.force_login(community.users["village_a"])
    assert client.get(BASE + "Patient").status_code == 200
    response = client.get(
        BASE + "Patient", HTTP_X_HUIZHEN_ORGANISATION=str(community.other_county.external_id)
    )
    assert response.status_code == 403
    assert issue_codes(response) == ["forbidden"]
