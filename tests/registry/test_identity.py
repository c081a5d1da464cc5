from datetime import date

import pytest

from registry.identity import (
    IdentityError,
    id_check_character,
    mask_mobile,
    normalise_icd10,
    normalise_mobile,
    parse_resident_id,
)


def test_valid_id_number_yields_birth_date_and_sex():
    parsed = parse_resident_id("11010519491231002x")
    assert parsed.number == "11010519491231002X"
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.sex == "female"
    assert parsed.division_code == "110105"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("110105194912310021", "checksum"),  # one wrong check character
        ("110105194912310", "format"),  # too short
        ("11010519491331002X", "birth_date"),  # month 13
        ("010105194912310021", "division"),  # no province starts with 0
        ("1101051949123100AX", "format"),
    ],
)
def test_invalid_id_numbers_name_the_rule_they_break(raw, code):
    with pytest.raises(IdentityError) as err:
        parse_resident_id(raw)
    assert err.value.code == code


def test_a_single_typo_in_any_digit_is_caught():
    good = "11010519491231002X"
    for position in range(17):
        digit = good[position]
        typo = good[:position] + str((int(digit) + 1) % 10) + good[position + 1 :]
        try:
            parsed = parse_resident_id(typo)
        except IdentityError:
            continue
        pytest.fail(f"typo at {position} accepted as {parsed.number}")


def test_check_character_matches_the_standard_example():
    # The worked example of GB 11643-1999: 11010519491231002 -> X.
    assert id_check_character("11010519491231002") == "X"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("19912345678", "19912345678"),
    ],
)
def test_mobile_numbers_are_normalised(raw, expected):
    assert normalise_mobile(raw) == expected


@pytest.mark.parametrize("raw", ["12800138000", "1380013800", "138001380001", "010-12345678", ""])
def test_invalid_mobile_numbers_are_refused(raw):
    with pytest.raises(IdentityError):
        normalise_mobile(raw)


def test_mobile_masking_hides_the_middle_digits():
    assert mask_mobile("13800138000") == "138****8000"


def test_icd10_codes_are_normalised_and_checked():
    assert normalise_icd10(" e11.9 ") == "E11.9"
    with pytest.raises(IdentityError):
        normalise_icd10("hypertension")


def test_compound_surnames_are_split_and_spelt_in_pinyin():
    from registry.identity import split_chinese_name
    from registry.services import pinyin_of

    assert split_chinese_name("欧阳秀兰") == ("欧阳", ["秀兰"])
    assert split_chinese_name("王伟") == ("王", ["伟"])
    assert pinyin_of("欧阳秀兰") == "Ouyang Xiulan"
    assert pinyin_of("张建华") == "Zhang Jianhua"
