"""ORM^O01 / OMG^O19 from the HIS become consult requests (sent over MLLP to the listener)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from consult.models import ConsultRequest
from ehr_bridge import inbound_map, services
from ehr_bridge.models import InboundOrder, InboundStatus, OutboundMessage
from registry.models import Consent, Notification, StaffProfile
from tests.consult.conftest import URL, act
from tests.ehr_bridge.conftest import wait_for
from tests.ehr_bridge.inbound_samples import GB, admit, orm, send
from tests.factories import make_org

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def his(start_listener, partner, community):
    """The listener, the county HIS as partner, and Dr 张卫东 (licence D0012) of the county."""
    StaffProfile.objects.filter(user=community.users["county_doctor"]).update(
        licence_number="D0012", display_name="张卫东"
    )
    return start_listener()


def test_nw_order_in_gb18030_becomes_a_submitted_ecg_consult(his, partner, community):
    patient = admit(his)
    row = send(his, orm("ORM-1"))
    assert row.status == InboundStatus.PROCESSED, row.error
    order = InboundOrder.objects.get()
    assert order.placer_order_number == "XD20240301001" and order.partner == partner
    assert order.service_text == "十二导联心电图" and "张卫东" in order.ordering_provider
    consult = order.consult
    assert consult.patient == patient and consult.patient.name == "王小明"
    assert consult.consult_type == "ecg_read" and consult.urgency == "emergency"
    assert "胸痛2小时" in consult.clinical_question
    assert "既往高血压病史10年" in consult.clinical_question
    assert consult.requester == community.users["county_doctor"]
    assert consult.requesting_organisation == community.county
    assert consult.state == "queued" and consult.centre == community.ecg
    consent = Consent.objects.get(patient=patient)
    assert consent.kind == "teleconsult" and consent.method == "written"
    assert "XD20240301001" in consent.note and consult.consent == consent
    assert row.patient == patient


def test_a_repeated_nw_creates_nothing_more(his, partner):
    admit(his)
    send(his, orm("ORM-1"))
    again = send(his, orm("ORM-1-RESENT"))
    assert again.status == InboundStatus.PROCESSED
    assert ConsultRequest.objects.count() == 1 and InboundOrder.objects.count() == 1
    assert Consent.objects.count() == 1


def test_omg_o19_is_applied_like_orm(his, partner, community):
    make_org("影像中心", "regional_centre", community.county, services=["imaging"])
    admit(his)
    row = send(his, orm("OMG-1", message_type="OMG^O19^OMG_O19", service="CT001^胸部CT平扫^L"))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert ConsultRequest.objects.get().consult_type == "imaging_read"


def test_partner_service_map_and_priority(his, partner):
    partner.service_map = {"XD9": "ecg_read"}
    partner.save()
    admit(his)
    row = send(his, orm("ORM-MAP", service="XD9^动态监测^L", priority="R"))
    assert row.status == InboundStatus.PROCESSED, row.error
    consult = ConsultRequest.objects.get()
    assert (consult.consult_type, consult.urgency) == ("ecg_read", "routine")


def test_ca_cancels_the_consult_and_a_repeated_ca_changes_nothing(his, partner):
    admit(his)
    send(his, orm("ORM-1"))
    row = send(his, orm("ORM-2", control="CA"))
    assert row.status == InboundStatus.PROCESSED, row.error
    consult = ConsultRequest.objects.get()
    assert consult.state == "cancelled" and "XD20240301001" in consult.cancel_reason
    assert send(his, orm("ORM-3", control="CA")).status == InboundStatus.PROCESSED


def test_ca_after_signing_is_parked_with_the_reason_and_alerts(his, partner, community):
    admit(his)
    send(his, orm("ORM-1"))
    ConsultRequest.objects.update(state="signed", assignee=community.users["ecg_specialist"])
    row = send(his, orm("ORM-2", control="CA"))
    assert row.status == InboundStatus.PARKED and "cannot be cancelled" in row.error
    assert ConsultRequest.objects.get().state == "signed"
    assert Notification.objects.filter(
        user=community.users["county_admin"], category="hl7_parked"
    ).exists()


def test_order_of_an_unknown_patient_is_parked(his, partner):
    row = send(his, orm("ORM-X", mrn="NOBODY"))
    assert row.status == InboundStatus.PARKED
    assert "Unknown patient" in row.error and "NOBODY" in row.error
    assert not ConsultRequest.objects.exists()


def test_an_order_no_centre_can_take_is_parked_with_nothing_created(his, partner):
    admit(his)
    row = send(his, orm("ORM-PATH", service="BL01^病理切片会诊^L"))
    assert row.status == InboundStatus.PARKED
    assert not ConsultRequest.objects.exists() and not Consent.objects.exists()


def test_unknown_service_is_parked(his, partner):
    admit(his)
    row = send(his, orm("ORM-U", service="ZZ77^其他^L"))
    assert row.status == InboundStatus.PARKED and "service map" in row.error
    assert not ConsultRequest.objects.exists() and not InboundOrder.objects.exists()


def test_unknown_provider_uses_the_order_account_else_parks(his, partner, community):
    admit(his)
    row = send(his, orm("ORM-P1", provider="X999^李^四"))
    assert row.status == InboundStatus.PARKED and "order account" in row.error
    partner.order_requester = community.users["county_doctor"]
    partner.save()
    services._partners.clear()  # the worker caches partners for a few seconds
    row = send(his, orm("ORM-P2", provider="X999^李^四", placer="XD2"))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert ConsultRequest.objects.get().requester == community.users["county_doctor"]


def test_without_implied_consent_the_order_waits_as_a_draft(his, partner):
    partner.order_consent_method = ""
    partner.save()
    admit(his)
    row = send(his, orm("ORM-D"))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert ConsultRequest.objects.get().state == "draft"
    assert not Consent.objects.exists()


def test_xo_changes_a_draft_but_not_a_queued_consult(his, partner):
    partner.order_consent_method = ""
    partner.save()
    admit(his)
    send(his, orm("ORM-D"))
    row = send(his, orm("ORM-XO", control="XO", question="复查：胸闷加重", note=""))
    assert row.status == InboundStatus.PROCESSED, row.error
    assert ConsultRequest.objects.get().clinical_question == "复查：胸闷加重"
    ConsultRequest.objects.update(state="cancelled")
    row = send(his, orm("ORM-XO2", control="XO", question="再次修改", note=""))
    assert row.status == InboundStatus.PARKED and "cannot be changed" in row.error


def test_orm_without_obr_is_refused_before_the_ack(his, partner):
    text = orm("ORM-NOOBR").replace(
        "\rOBR|" + orm("ORM-NOOBR").split("\rOBR|", 1)[1].split("\r", 1)[0], ""
    )
    ack = his.send(text.encode("gb18030")).decode("gb18030")
    assert "MSA|AE|ORM-NOOBR" in ack and "OBR" in ack


def test_signed_report_carries_the_placer_order_number(his, partner, community, receiver):
    rcv = receiver()
    admit(his)
    send(his, orm("ORM-1"))
    partner.outbound_enabled = True
    partner.outbound_host, partner.outbound_port = "127.0.0.1", rcv.port
    partner.outbound_events = ["ORU^R01"]
    partner.outbound_charset = GB
    partner.save()
    cid = str(ConsultRequest.objects.get().external_id)
    assert act(community, "ecg_specialist", cid, "accept").status_code == 200
    assert act(community, "ecg_specialist", cid, "start").status_code == 200
    saved = community.client("ecg_specialist").put(
        f"{URL}{cid}/report/",
        {"findings": "窦性心律，V1-V4导联ST段抬高", "impression": "急性前壁心肌梗死可能"},
        format="json",
    )
    assert saved.status_code == 200, saved.json()
    signed = act(community, "ecg_specialist", cid, "sign", {"password": "pw-ecg_specialist"})
    assert signed.status_code == 200, signed.json()
    assert wait_for(lambda: OutboundMessage.objects.filter(status="acked").exists())
    text = rcv.received[0].decode("gb18030")
    orc = next(s for s in text.split("\r") if s.startswith("ORC|")).split("|")
    obr = next(s for s in text.split("\r") if s.startswith("OBR|")).split("|")
    assert orc[2] == obr[2] == "XD20240301001"
    assert cid in orc[3] and cid in obr[3]


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        ("11524-6", "", "ecg_read"),
        ("XD01", "动态心电图", "ecg_read"),
        ("CT001", "胸部CT平扫", "imaging_read"),
        ("US12", "腹部彩超", "imaging_read"),
        ("BL01", "病理切片会诊", "pathology_read"),
        ("JY01", "检验结果复核", "lab_review"),
        ("ZZ77", "其他", None),
    ],
)
def test_default_service_mapping(code, text, expected):
    order = inbound_map.OrderData("NW", "P1", "", code, text, "L", "routine", "", "", "", "", None)
    assert inbound_map.consult_type_for(order, {}) == expected


def test_hl7_datetimes_are_read_in_local_time_or_their_offset():
    shanghai = ZoneInfo("Asia/Shanghai")
    assert inbound_map.hl7_datetime("20240301083000", tz="Asia/Shanghai") == datetime(
        2024, 3, 1, 8, 30, tzinfo=shanghai
    )
    assert inbound_map.hl7_datetime("202403010830+0000", tz="Asia/Shanghai") == datetime(
        2024, 3, 1, 16, 30, tzinfo=shanghai
    )
    assert inbound_map.hl7_datetime("20240301", tz="Asia/Shanghai").hour == 0
    assert inbound_map.hl7_datetime("", tz="Asia/Shanghai") is None
    with pytest.raises(inbound_map.InboundMappingError):
        inbound_map.hl7_datetime("2024-03-01", tz="Asia/Shanghai")
