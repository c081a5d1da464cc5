"""Processing after the acknowledgement: ADT into the patient index, order per patient,
merges, parking and replay."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.utils import timezone

from ehr_bridge import services
from ehr_bridge.models import InboundMessage, InboundStatus
from registry import feeds
from registry.models import AuditEvent, DomainEvent, Patient, PatientIdentifier
from tests.ehr_bridge.conftest import adt
from tests.factories import resident_id


def receive(text: str, codec: str = "utf-8") -> int:
    result = services.inbound_receive(raw=text.encode(codec), peer="test")
    assert result.code == "AA", result.ack
    return result.message_id


def process(message_id: int) -> None:
    services.inbound_process(message_id=message_id)


def status(message_id: int) -> str:
    return InboundMessage.objects.get(id=message_id).status


def test_a04_creates_a_patient_with_identifiers_id_number_and_demographics(partner):
    id_number = resident_id(date(1956, 3, 14), male=True)
    message_id = receive(adt("P-1", mrn="H0001", id_number=id_number))
    process(message_id)
    assert status(message_id) == InboundStatus.PROCESSED
    patient = Patient.objects.get()
    assert (patient.name, patient.sex, patient.birth_date) == ("王小明", "male", date(1956, 3, 14))
    assert patient.id_number == id_number
    assert patient.mobile == "13800138000"
    assert patient.address == "湖南省青山县人民路1号" and patient.address_division_code == "431226"
    assert patient.home_organisation == partner.organisation
    assert patient.name_pinyin == "Wang Xiaoming"
    assert list(patient.identifiers.values_list("authority", "kind", "value")) == [
        ("COUNTY_HOSP", "MR", "H0001")
    ]
    audit = AuditEvent.objects.get(action="patient.create.feed")
    assert audit.actor_username == "hl7:COUNTY_HOSP" and audit.actor_id is None
    assert DomainEvent.objects.filter(event_type="patient.created").count() == 1


def test_a04_matches_an_existing_patient_by_resident_id_number(partner, community):
    id_number = resident_id(date(1960, 1, 2), male=False)
    existing = Patient.objects.create(
        name="李秀兰",
        sex="female",
        birth_date=date(1960, 1, 2),
        id_number=id_number,
        home_organisation=community.village_a,
    )
    message_id = receive(
        adt(
            "P-2",
            mrn="H0002",
            id_number=id_number,
            family="李",
            given="秀兰",
            birth="19600102",
            sex="F",
        )
    )
    process(message_id)
    assert Patient.objects.count() == 1
    assert PatientIdentifier.objects.get(value="H0002").patient == existing


def test_a08_after_a04_for_the_same_patient_applies_in_arrival_order(partner):
    # Given an A04 then an A08 for the same patient, both stored
    first = receive(adt("O-1", trigger="A04", mrn="ORD", given="小明"))
    second = receive(adt("O-2", trigger="A08", mrn="ORD", given="晓明", mobile="13900001111"))
    # When the worker happens to pick up the A08 first
    process(second)
    # Then the A04 was applied before it, and the A08's data wins
    a04, a08 = InboundMessage.objects.get(id=first), InboundMessage.objects.get(id=second)
    assert a04.status == a08.status == InboundStatus.PROCESSED
    assert a04.processed_at <= a08.processed_at
    patient = Patient.objects.get()
    assert (patient.name, patient.mobile) == ("王晓明", "13900001111")


def test_a_younger_message_waits_while_an_older_one_is_failing(partner, monkeypatch, settings):
    settings.HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS = 3
    first = receive(adt("W-1", mrn="WAIT"))
    second = receive(adt("W-2", trigger="A08", mrn="WAIT", given="晓明"))
    real = feeds.patient_upsert_from_feed
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("registry briefly unavailable")
        return real(**kwargs)

    monkeypatch.setattr(feeds, "patient_upsert_from_feed", flaky)
    process(first)
    assert status(first) == InboundStatus.ERROR
    process(second)
    assert status(second) == InboundStatus.RECEIVED  # held back behind the failing A04
    InboundMessage.objects.filter(id=first).update(next_attempt_at=timezone.now())
    process(second)
    assert status(first) == status(second) == InboundStatus.PROCESSED
    assert Patient.objects.get().name == "王晓明"


def test_failure_parks_after_retries_and_replay_applies_it(
    partner, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS = 3

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(feeds, "patient_upsert_from_feed", broken)
    message_id = receive(adt("F-1", mrn="FAIL"))
    for _ in range(3):
        InboundMessage.objects.filter(id=message_id).update(next_attempt_at=timezone.now())
        process(message_id)
    row = InboundMessage.objects.get(id=message_id)
    assert row.status == InboundStatus.PARKED and row.attempts == 3
    assert "RuntimeError: boom" in row.error
    assert not Patient.objects.exists()
    # parked: nothing more happens on its own
    process(message_id)
    assert status(message_id) == InboundStatus.PARKED
    # When the operator replays it after the cause is fixed
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("hl7_replay", str(row.external_id))
    # Then (tasks run inline in tests) it is applied
    assert status(message_id) == InboundStatus.PROCESSED
    assert PatientIdentifier.objects.get(value="FAIL").patient.name == "王小明"
    assert AuditEvent.objects.filter(action="hl7.message.replay").count() == 1
    kinds = list(row.events.values_list("kind", flat=True))
    assert kinds == ["received", "failed", "failed", "parked", "replayed", "processed"]


def test_data_errors_park_at_once(partner):
    message_id = receive(adt("F-2", mrn="BAD", birth="", sex="U"))  # cannot create: no birth date
    process(message_id)
    row = InboundMessage.objects.get(id=message_id)
    assert row.status == InboundStatus.PARKED and row.attempts == 1
    assert "ValidationFailed" in row.error


def test_a40_merges_the_prior_patient_into_the_survivor(partner):
    process(receive(adt("M-1", mrn="KEEP", given="小明")))
    id_number = resident_id(date(1956, 3, 14), male=True)
    process(receive(adt("M-2", mrn="OLD", given="小明", id_number=id_number)))
    keep = PatientIdentifier.objects.get(value="KEEP").patient
    old = PatientIdentifier.objects.get(value="OLD").patient
    assert keep != old
    merge = adt("M-3", trigger="A40", mrn="KEEP", extra="MRG|OLD^^^COUNTY_HOSP^MR")
    message_id = receive(merge)
    process(message_id)
    assert status(message_id) == InboundStatus.PROCESSED
    old.refresh_from_db()
    keep.refresh_from_db()
    assert old.merged_into == keep
    assert PatientIdentifier.objects.get(value="OLD").patient == keep
    assert keep.id_number == id_number and old.id_number is None
    assert DomainEvent.objects.filter(event_type="patient.merged").count() == 1
    # a repeated merge (new control ID) changes nothing
    process(receive(adt("M-4", trigger="A40", mrn="KEEP", extra="MRG|OLD^^^COUNTY_HOSP^MR")))
    assert DomainEvent.objects.filter(event_type="patient.merged").count() == 1


def test_a40_without_mrg_is_refused_before_storing(partner):
    result = services.inbound_receive(raw=adt("M-9", trigger="A40").encode(), peer="t")
    assert result.code == "AE"
    assert not InboundMessage.objects.exists()


def test_other_types_are_kept_as_unsupported_for_now(partner):
    text = "MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ADT^A03|R-4|P|2.5\rPID|1||X\r"
    message_id = receive(text)
    process(message_id)
    row = InboundMessage.objects.get(id=message_id)
    assert row.status == InboundStatus.UNSUPPORTED and row.text == text
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    "text",
    [
        "MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ORU^R01|R-1|P|2.5\rPID|1||X^^^COUNTY_HOSP^MR"
        "\rOBR|1|P1\rOBX|1|NM|BP||120\r",
        "MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||ORM^O01|R-2|P|2.3\rPID|1||X\rORC|NW|1\r"
        "OBR|1|1||ECG\r",
        "MSH|^~\\&|DEMO_HIS|COUNTY_HOSP|||20240301||SIU^S12|R-3|P|2.4\rSCH|1|1\rPID|1||X\r",
    ],
)
def test_orders_results_and_appointments_of_an_unknown_patient_are_parked(partner, text):
    message_id = receive(text)
    process(message_id)
    row = InboundMessage.objects.get(id=message_id)
    assert row.status == InboundStatus.PARKED and "Unknown patient" in row.error
    assert not Patient.objects.exists()


def test_hl7apy_tolerates_z_segments_and_trailing_separators(partner):
    text = adt("T-1", mrn="ZSEG", extra="ZPI|custom|data|||").replace("PV1|1|O", "PV1|1|O|||||")
    message_id = receive(text)
    process(message_id)
    assert status(message_id) == InboundStatus.PROCESSED


def test_crlf_separators_are_normalised(partner):
    message_id = receive(adt("T-2", mrn="CRLF").replace("\r", "\r\n"))
    process(message_id)
    assert status(message_id) == InboundStatus.PROCESSED
    assert "\n" not in InboundMessage.objects.get(id=message_id).text


def test_received_bytes_and_ack_cannot_be_changed(partner):
    message_id = receive(adt("I-1"))
    with pytest.raises(DatabaseError, match="keeps what was received"):
        with transaction.atomic():
            InboundMessage.objects.filter(id=message_id).update(raw=b"tampered")
    with pytest.raises(DatabaseError, match="keeps what was received"):
        with transaction.atomic():
            InboundMessage.objects.filter(id=message_id).update(control_id="OTHER")
    InboundMessage.objects.filter(id=message_id).update(status=InboundStatus.PARKED)
    assert status(message_id) == InboundStatus.PARKED
