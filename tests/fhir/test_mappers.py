"""The pure pieces: Chinese names, DICOM dates and FHIR search values."""

from __future__ import annotations

from datetime import date

import pytest

from ehr_bridge.fhir.mappers import dicom_datetime, split_chinese_name
from ehr_bridge.fhir.search import SearchError, parse_date, parse_token


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("王秀英", ("王", ["秀英"])),
        ("李明", ("李", ["明"])),
        ("欧阳娜娜", ("欧阳", ["娜娜"])),
        ("司马光", ("司马", ["光"])),
        ("𠮷野", ("𠮷", ["野"])),  # a surname outside the BMP
        ("阿依古丽·买买提", (None, [])),  # a minority name with a separator dot: not split
        ("Zhang San", (None, [])),
        ("王", (None, [])),
    ],
)
def test_chinese_names_split_after_the_surname(name, split):
    assert split_chinese_name(name) == split


def test_dicom_dates_and_times_become_fhir_date_times_in_the_server_zone(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    assert dicom_datetime("20240601", "093000.123") == "2024-06-01T09:30:00+08:00"
    assert dicom_datetime("20240601", "0930") == "2024-06-01T09:30:00+08:00"
    assert dicom_datetime("20240601", "") == "2024-06-01"
    assert dicom_datetime("20240601", "garbage") == "2024-06-01"
    assert dicom_datetime("2024", "") is None
    assert dicom_datetime("20241301", "") is None


def test_search_values_parse_as_fhir_defines_them():
    assert parse_date("1956").start == date(1956, 1, 1)
    assert parse_date("1956").end == date(1957, 1, 1)
    assert parse_date("ge1956-12").end == date(1957, 1, 1)
    assert parse_date("lt1956-03-14T10:00:00+08:00").start == date(1956, 3, 14)
    with pytest.raises(SearchError):
        parse_date("1956-02-30")
    token = parse_token("urn:x|")
    assert (token.system, token.code) == ("urn:x", None)
    token = parse_token("|42")
    assert (token.system, token.code) == ("", "42")
    assert parse_token("42").system is None
