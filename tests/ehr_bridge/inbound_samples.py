"""Orders, results and appointments as a Chinese HIS sends them, and a helper to send them
over MLLP and wait until the worker applied them."""

from __future__ import annotations

from datetime import datetime

from ehr_bridge.models import InboundMessage, InboundStatus
from tests.ehr_bridge.conftest import Listener, adt, msa, wait_for

GB = "GB 18030-2000"
SENDER = ("DEMO_HIS", "COUNTY_HOSP")


def _msh(kind: str, control_id: str, *, charset: str, version: str = "2.4") -> str:
    return (
        f"MSH|^~\\&|{SENDER[0]}|{SENDER[1]}|HUIZHEN|HUIZHEN|20240301090000||{kind}|{control_id}"
        f"|P|{version}|||||CHN|{charset}"
    )


def _pid(mrn: str, family: str, given: str) -> str:
    return f"PID|1||{mrn}^^^COUNTY_HOSP^MR||{family}^{given}^^^^^L||19560314|M"


def orm(
    control_id: str,
    *,
    control: str = "NW",
    placer: str = "XD20240301001",
    service: str = "ECG12^十二导联心电图^L",
    priority: str = "S",
    question: str = "胸痛2小时，心电图示ST段抬高？",
    note: str = "既往高血压病史10年",
    provider: str = "D0012^张^卫东",
    mrn: str = "H0001",
    family: str = "王",
    given: str = "小明",
    charset: str = GB,
    message_type: str = "ORM^O01^ORM_O01",
) -> str:
    segments = [
        _msh(message_type, control_id, charset=charset),
        _pid(mrn, family, given),
        "PV1|1|O|心内科门诊^^^COUNTY_HOSP",
        f"ORC|{control}|{placer}|||||^^^20240301090000^^{priority}||20240301090000|||{provider}",
        f"OBR|1|{placer}||{service}|{priority}|20240301090000|||||||{question}|||{provider}",
    ]
    if note:
        segments.append(f"NTE|1|L|{note}")
    return "\r".join(segments) + "\r"


def oru(
    control_id: str,
    *,
    observations: list[tuple[str, str, str, str, str, str, str]],
    filler: str = "LIS20240301-0007",
    placer: str = "JY20240301007",
    mrn: str = "H0001",
    family: str = "王",
    given: str = "小明",
    charset: str = GB,
) -> str:
    """``observations``: (code, text, value, units, range, flag, status) per OBX."""
    segments = [
        _msh("ORU^R01^ORU_R01", control_id, charset=charset, version="2.5"),
        _pid(mrn, family, given),
        f"OBR|1|{placer}|{filler}|BLD-CBC^血常规^L|||20240301080000|||||||||D0012^张^卫东"
        "||||||20240301100000|||F",
    ]
    for n, (code, text, value, units, ref, flag, status) in enumerate(observations, 1):
        segments.append(
            f"OBX|{n}|NM|{code}^{text}^LN||{value}|{units}|{ref}|{flag}|||{status}|||20240301083000"
        )
    return "\r".join(segments) + "\r"


def siu(
    control_id: str,
    *,
    trigger: str = "S12",
    filler: str = "YY20240301001",
    start: datetime,
    resource: str = "MZ-QK01",
    reason: str = "高血压复诊",
    mrn: str = "H0001",
    family: str = "王",
    given: str = "小明",
    charset: str = GB,
) -> str:
    when = start.strftime("%Y%m%d%H%M%S")
    segments = [
        _msh(f"SIU^{trigger}^SIU_S12", control_id, charset=charset, version="2.5"),
        f"SCH|PL{filler}|{filler}|||||^{reason}|||15^min|^^15^{when}^{when}|||||D0012^张^卫东",
        _pid(mrn, family, given),
        "RGS|1",
        f"AIL|1||{resource}^^^COUNTY_HOSP^^^^全科门诊",
        f"AIP|1||D0012^张^卫东|||{when}",
    ]
    return "\r".join(segments) + "\r"


def send(listener: Listener, text: str, *, charset: str = GB) -> InboundMessage:
    """Send over MLLP, check the AA, and wait until the worker has finished with it."""
    codec = "gb18030" if charset == GB else "utf-8"
    ack = listener.send(text.encode(codec))
    control_id = text.split("\r", 1)[0].split("|")[9]
    assert msa(ack, codec)[1:3] == ["AA", control_id], ack
    done = (InboundStatus.PROCESSED, InboundStatus.PARKED, InboundStatus.UNSUPPORTED)
    assert wait_for(
        lambda: InboundMessage.objects.filter(control_id=control_id, status__in=done).exists()
    )
    return InboundMessage.objects.get(control_id=control_id)


def admit(listener: Listener, *, mrn: str = "H0001", family: str = "王", given: str = "小明"):
    """The HIS registers the patient first (ADT^A04 in GB 18030)."""
    row = send(
        listener,
        adt(f"ADT-{mrn}", charset=GB, mrn=mrn, family=family, given=given),
    )
    assert row.status == InboundStatus.PROCESSED, row.error
    return row.patient
