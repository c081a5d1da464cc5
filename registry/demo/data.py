"""The demo county medical community loaded by ``manage.py seed_demo``.

Qingshan County is fictional; its division code is a well-formed one. Organisation names are
Chinese, as on a real deployment; the English words are used in the README's login table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COUNTY_DIVISION_CODE = "431226"

# (key, name, kind, parent key, services, AE title, HL7 facility)
ORGANISATIONS: list[tuple[str, str, str, str | None, list[str], str, str]] = [
    (
        "county",
        "青山县人民医院",
        "county_hospital",
        None,
        ["cardiology", "endocrinology", "general_medicine", "lab"],
        "QSCOUNTY",
        "COUNTY_HOSP",
    ),
    ("ecg", "青山县远程心电诊断中心", "regional_centre", "county", ["ecg"], "QSECG", "QSECG"),
    (
        "imaging",
        "青山县远程影像诊断中心",
        "regional_centre",
        "county",
        ["imaging"],
        "QSPACS",
        "QSPACS",
    ),
    (
        "pathology",
        "青山县远程病理诊断中心",
        "regional_centre",
        "county",
        ["pathology"],
        "QSPATH",
        "QSPATH",
    ),
]

# Township health centres and their village clinics: (key, Chinese name stem, [villages]).
TOWNSHIPS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("dongshan", "东山镇", [("dongshan", "东山村"), ("shiqiao", "石桥村"), ("liushu", "柳树村")]),
    ("xihe", "西河镇", [("xihe", "西河村"), ("taoyuan", "桃园村"), ("hekou", "河口村")]),
    ("nanling", "南岭乡", [("nanling", "南岭村"), ("zhulin", "竹林村"), ("gaopo", "高坡村")]),
    ("beiping", "北坪镇", [("beiping", "北坪村"), ("xinghua", "杏花村"), ("longtan", "龙潭村")]),
]

# The DR and ECG cart of a township centre, calling from this machine.
DEMO_MODALITY_AES = {"dongshan": ["DEMO_DR", "DEMO_ECG"]}


@dataclass(frozen=True)
class DemoLogin:
    username: str
    display_name: str
    organisation: str  # key into the organisations built by seed_demo
    role: str
    professional_title: str = ""
    specialties: list[str] = field(default_factory=list)
    is_superuser: bool = False


def demo_logins() -> list[DemoLogin]:
    logins = [
        DemoLogin("sysadmin", "系统管理员", "county", "system_admin", is_superuser=True),
        DemoLogin("county.admin", "何建国", "county", "org_admin"),
        DemoLogin("county.coordinator", "周晓燕", "county", "coordinator"),
        DemoLogin("county.doctor", "吴志强", "county", "doctor", "attending", ["general_medicine"]),
        DemoLogin("ecg.specialist", "陈立新", "ecg", "specialist", "chief", ["cardiology", "ecg"]),
        DemoLogin(
            "imaging.specialist", "林海涛", "imaging", "specialist", "associate_chief", ["imaging"]
        ),
        DemoLogin(
            "pathology.specialist", "郭婉清", "pathology", "specialist", "chief", ["pathology"]
        ),
    ]
    township_doctors = {
        "dongshan": "赵德明",
        "xihe": "钱秀兰",
        "nanling": "孙永红",
        "beiping": "李国庆",
    }
    village_doctors = [
        "王春生",
        "张桂芳",
        "刘长青",
        "杨金花",
        "黄德胜",
        "周玉梅",
        "吴宝山",
        "徐凤英",
        "马占奎",
        "朱秀珍",
        "胡满仓",
        "高翠兰",
    ]
    names = iter(village_doctors)
    for township, _stem, villages in TOWNSHIPS:
        logins.append(
            DemoLogin(
                f"{township}.doctor",
                township_doctors[township],
                f"township:{township}",
                "doctor",
                "attending",
                ["general_medicine"],
            )
        )
        for village, _name in villages:
            logins.append(
                DemoLogin(f"{village}.village", next(names), f"village:{village}", "village_doctor")
            )
    return logins


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓"
    "曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN_MALE = [
    "建国",
    "志强",
    "国华",
    "永军",
    "德福",
    "长海",
    "明亮",
    "海峰",
    "立新",
    "振华",
    "文斌",
    "春雷",
    "大勇",
    "伟",
    "军",
    "刚",
    "强",
    "杰",
    "涛",
    "斌",
    "宏",
    "亮",
    "福生",
    "满堂",
    "有才",
    "金宝",
]
GIVEN_FEMALE = [
    "秀英",
    "桂兰",
    "玉兰",
    "凤英",
    "秀珍",
    "淑芬",
    "丽华",
    "春梅",
    "海燕",
    "红霞",
    "静",
    "敏",
    "丽",
    "芳",
    "娟",
    "霞",
    "燕",
    "萍",
    "翠花",
    "金凤",
    "冬梅",
    "小红",
    "月娥",
    "彩云",
    "巧玲",
]
MOBILE_PREFIXES = [
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "182",
    "183",
    "187",
    "188",
    "130",
    "131",
    "132",
    "155",
    "156",
    "185",
    "186",
    "133",
    "153",
    "180",
    "181",
    "189",
    "177",
    "199",
]
