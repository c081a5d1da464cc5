from registry.models import AuditEvent, Consent


def _url(patient):
    return f"/api/v1/patients/{patient.external_id}/consents/"


def test_consent_is_recorded_listed_and_revoked(community, patient_factory):
    patient = patient_factory(home_organisation=community.village_a)
    client = community.client("village_a")
    created = client.post(
        _url(patient), {"kind": "teleconsult", "method": "written"}, format="json"
    )
    assert created.status_code == 201, created.json()
    consent_id = created.json()["id"]
    listed = client.get(_url(patient)).json()
    assert [c["id"] for c in listed] == [consent_id]
    revoke = f"{_url(patient)}{consent_id}/revoke/"
    assert client.post(revoke, {"reason": ""}, format="json").status_code == 400
    done = client.post(revoke, {"reason": "患者撤回同意"}, format="json")
    assert done.status_code == 200
    assert done.json()["revoked_at"]
    assert client.post(revoke, {"reason": "again"}, format="json").status_code == 409
    consent = Consent.objects.get()
    assert consent.recorded_by == community.users["village_a"]
    assert consent.revoked_by == community.users["village_a"]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"consent.create", "consent.revoke"} <= actions


def test_sharing_consent_names_the_centre(community, patient_factory):
    patient = patient_factory(home_organisation=community.village_a)
    client = community.client("village_a")
    missing = client.post(
        _url(patient), {"kind": "share_with_centre", "method": "verbal"}, format="json"
    )
    assert missing.status_code == 400
    assert "organisation" in missing.json()["fields"]
    ok = client.post(
        _url(patient),
        {
            "kind": "share_with_centre",
            "method": "verbal",
            "organisation": str(community.ecg.external_id),
        },
        format="json",
    )
    assert ok.status_code == 201


def test_another_organisation_cannot_record_or_read_consent(community, patient_factory):
    patient = patient_factory(home_organisation=community.village_a)
    other = community.client("other_doctor")
    assert other.get(_url(patient)).status_code == 404
    assert (
        other.post(
            _url(patient), {"kind": "teleconsult", "method": "written"}, format="json"
        ).status_code
        == 404
    )
    assert not Consent.objects.exists()
