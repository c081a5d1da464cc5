from django.urls import path

from . import chronic_pages, pages

urlpatterns = [
    path("", pages.home_page, name="portal-home"),
    path("login/", pages.login_page, name="portal-login"),
    path("logout/", pages.logout_page, name="portal-logout"),
    path("switch/", pages.switch_patient, name="portal-switch"),
    path("book/", pages.book_page, name="portal-book"),
    path("bookings/<str:booking_id>/cancel/", pages.cancel_booking, name="portal-cancel"),
    path("bookings/<str:booking_id>/reschedule/", pages.reschedule_page, name="portal-reschedule"),
    path("bookings/<str:booking_id>/ics/", pages.booking_ics, name="portal-ics"),
    path("offers/<str:entry_id>/accept/", pages.accept_offer, name="portal-offer-accept"),
    path("readings/", chronic_pages.readings_page, name="portal-readings"),
    path("contract/", chronic_pages.contract_page, name="portal-contract"),
]
