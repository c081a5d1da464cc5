"""A patient signs in to the portal with an SMS code on a phone-sized screen, books the due
follow-up, cancels it and sees the time free again."""

from __future__ import annotations

import re

import pytest

from appointments.models import Booking, Schedule, Slot
from registry import sms
from tests.appointments.conftest import future_day, local, make_slot

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone_page(browser):
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def clinic(community, patient_factory):
    schedule = Schedule.objects.create(
        organisation=community.township, name="慢病门诊", department="全科"
    )
    day = future_day(3)
    slots = [make_slot(schedule, local(day, 8, m)) for m in (0, 15, 30)]
    patient = patient_factory(home_organisation=community.village_a, chronic_conditions=["I10"])
    return schedule, slots, patient


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )


def test_patient_books_and_cancels_a_due_follow_up_on_a_phone(
    phone_page, live_server, clinic, community, tmp_path
):
    schedule, slots, patient = clinic
    page = phone_page
    base = live_server.url

    # Sign in with the code read from the development SMS backend.
    page.goto(f"{base}/portal/login/")
    page.fill("input[name=mobile]", patient.mobile)
    page.click("button[name=action][value=request]")
    page.wait_for_selector("input[name=code]")
    assert sms.outbox, "no sign-in code was sent"
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].text).group(1)
    page.fill("input[name=code]", code)
    page.click("button[name=action][value=verify]")
    page.wait_for_url(f"{base}/portal/")

    # The due follow-up card leads to the booking page.
    due = page.locator("section.due")
    assert due.count() == 1
    due.locator("a.button").click()
    page.wait_for_url(re.compile(r".*/portal/book/.*"))
    page.locator("ul.choices a", has_text=community.township.name).click()
    page.wait_for_selector("button.slot")
    assert page.locator("button.slot").count() == 3
    assert _no_horizontal_scroll(page)
    box = page.locator("button.slot").first.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44  # large tap targets
    page.screenshot(path=str(tmp_path / "portal-book-390x844.png"), full_page=True)
    assert (tmp_path / "portal-book-390x844.png").stat().st_size > 1000

    # Book the first time.
    page.locator("button.slot", has_text="08:00").click()
    page.wait_for_url(f"{base}/portal/")
    assert page.locator("article.visit").count() == 1
    booking = Booking.objects.get(patient=patient)
    assert booking.status == "confirmed" and booking.slot_id == slots[0].pk
    assert Slot.objects.get(pk=slots[0].pk).booked == 1
    assert page.locator("section.due").count() == 0
    assert _no_horizontal_scroll(page)

    # Cancel it: the visit is gone and the slot is free again.
    page.locator("article.visit button.danger").click()
    page.wait_for_url(f"{base}/portal/")
    assert page.locator("article.visit").count() == 0
    booking.refresh_from_db()
    assert booking.status == "cancelled"
    assert Slot.objects.get(pk=slots[0].pk).booked == 0
    page.goto(
        f"{base}/portal/book/?visit_type=chronic_followup&clinic={community.township.external_id}"
    )
    page.wait_for_selector("button.slot")
    assert page.locator("button.slot", has_text="08:00").count() == 1
    assert schedule.slots.count() == 3
