"""Realistic HL7 v2 messages as a Chinese HIS sends them (shared by tests and benchmarks)."""

from __future__ import annotations

from datetime import date, timedelta

FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
GIVEN = (
    "小明",
    "秀兰",
    "建国",
    "桂英",
    "志强",
    "丽娟",
    "德华",
    "淑珍",
    "国庆",
    "海燕",
    "堃",
    "喆",
)
COMPOUND = ("欧阳", "司马", "诸葛", "上官")


def resident_id(birth: date, serial: int, *, male: bool) -> str:
    """A valid 18-character resident ID number (GB 11643 check digit)."""
    sex_digit = (1 if male else 2) + 2 * (serial // 50 % 4)  # odd: male, even: female
    body = f"431226{birth:%Y%m%d}{serial % 50:02d}{sex_digit}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def realistic_adt(
    n: int,
    *,
    trigger: str = "A04",
    charset: str = "UNICODE UTF-8",
    sender: tuple[str, str] = ("DEMO_HIS", "COUNTY_HOSP"),
    control_prefix: str = "ADT",
    mrn_prefix: str = "H",
    with_id_number: bool = True,
) -> str:
    """An ADT message with what real feeds carry around the PID: EVN, NK1, PV1, PV2,
    repeated OBX (vital signs), AL1, DG1, a Z-segment and trailing separators."""
    family = COMPOUND[n % 4] if n % 17 == 0 else FAMILY[n % len(FAMILY)]
    given = GIVEN[n % len(GIVEN)]
    male = n % 2 == 0
    birth = date(1940, 1, 1) + timedelta(days=(n * 37) % 25000)
    ident = f"{mrn_prefix}{n:07d}^^^COUNTY_HOSP^MR"
    if with_id_number:
        ident += f"~{resident_id(birth, n, male=male)}^^^^ID"
    structure = "ADT_A39" if trigger == "A40" else "ADT_A01"
    segments = [
        f"MSH|^~\\&|{sender[0]}|{sender[1]}|HUIZHEN|HUIZHEN|20240301083000||ADT^{trigger}^"
        f"{structure}|{control_prefix}{n:08d}|P|2.5|||||CHN|{charset}",
        f"EVN|{trigger}|20240301083000|||0012^张^卫东^^^^^^COUNTY_HOSP",
        f"PID|1||{ident}||{family}^{given}^^^^^L||{birth:%Y%m%d}|{'M' if male else 'F'}"
        f"|||人民路{n % 300}号^^青山县^湖南省^418000^CHN^H^^431226||"
        f"138{n % 100000000:08d}^PRN^CP~0745-2345678^WPN^PH||||||||||汉族|||||||N|",
        f"NK1|1|{family}^大明|SON^儿子^HL70063|人民路1号^^青山县^湖南省|139{n:08d}^PRN^CP||",
        f"PV1|1|O|心内科门诊^^^COUNTY_HOSP||||0012^张^卫东|||MED||||1|||0012^张^卫东|OP|"
        f"V{n:07d}^^^COUNTY_HOSP|||||||||||||||||||||||||20240301083000",
        "PV2|||^高血压复诊^L|||||||||||||||||||||||||",
    ]
    vitals = [
        ("8480-6", "收缩压", str(120 + n % 40), "mm[Hg]"),
        ("8462-4", "舒张压", str(80 + n % 20), "mm[Hg]"),
        ("8867-4", "心率", str(60 + n % 30), "/min"),
        ("8310-5", "体温", "36.6", "Cel"),
        ("29463-7", "体重", "65.5", "kg"),
        ("8302-2", "身高", "168", "cm"),
    ]
    for i, (code, label, value, unit) in enumerate(vitals, 1):
        segments.append(f"OBX|{i}|NM|{code}^{label}^LN||{value}|{unit}||N|||F|||20240301083000")
    segments += [
        "AL1|1|DA|^青霉素^L|SV|皮疹",
        "DG1|1||I10^原发性高血压^ICD10|||F",
        f"ZPI|{n}|医保|城乡居民|||",
    ]
    return "\r".join(segments) + "\r"
