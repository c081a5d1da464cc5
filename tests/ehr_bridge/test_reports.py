"""A signed consult report reaches the hospital as ORU^R01 through a real MLLP receiver."""

import pytest

from consult.models import ConsultRequest
from ehr_bridge.models import OutboundMessage
from registry.models import PatientIdentifier
from tests.consult.conftest import URL, act, submitted
from tests.consult.conftest import patient as patient  # noqa: F401 - fixture
from tests.ehr_bridge.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _sign(community, patient):
    consult = submitted(community, patient)
    cid = consult["id"]
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    saved = community.client("ecg_specialist").put(
        f"{URL}{cid}/report/",
        {"findings": "窦性心律，ST段无明显改变", "impression": "正常心电图", "recommendations": ""},
        format="json",
    )
    assert saved.status_code == 200
    signed = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert signed.status_code == 200
    return cid


def test_signing_sends_oru_r01_to_the_his(community, patient, partner, receiver):  # noqa: F811
    rcv = receiver()
    partner.outbound_enabled = True
    partner.outbound_host, partner.outbound_port = "127.0.0.1", rcv.port
    partner.outbound_events = ["ORU^R01"]
    partner.save()
    PatientIdentifier.objects.create(
        patient=patient, authority="COUNTY_HOSP", kind="MR", value="H7788"
    )
    cid = _sign(community, patient)
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").exists())
    assert len(rcv.received) == 1
    text = rcv.received[0].decode("utf-8")
    segments = {line.split("|", 1)[0] for line in text.split("\r") if line}
    assert {"MSH", "PID", "OBR", "OBX"} <= segments
    assert "ORU^R01" in text and "H7788^^^COUNTY_HOSP^MR" in text
    assert "正常心电图" in text and patient.name in text
    consult = ConsultRequest.objects.get(external_id=cid)
    assert str(consult.external_id) in text  # the report ID (OBR-3)


def test_nothing_is_sent_without_a_partner_taking_reports(community, patient, partner):  # noqa: F811
    _sign(community, patient)
    assert not OutboundMessage.objects.exists()


def test_a_partner_that_wants_the_pdf_gets_it_as_an_ed_attachment(
    community,
    patient,  # noqa: F811
    partner,
    receiver,
):
    import base64

    rcv = receiver()
    partner.outbound_enabled = True
    partner.outbound_host, partner.outbound_port = "127.0.0.1", rcv.port
    partner.outbound_events = ["ORU^R01"]
    partner.outbound_include_pdf = True
    partner.save()
    _sign(community, patient)
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").exists())
    text = rcv.received[0].decode("utf-8")
    ed = [line for line in text.split("\r") if line.startswith("OBX|") and "|ED|" in line]
    assert len(ed) == 1
    encoded = next(part for part in ed[0].split("|")[5].split("^") if part.startswith("JVBER"))
    assert base64.b64decode(encoded).startswith(b"%PDF-")
