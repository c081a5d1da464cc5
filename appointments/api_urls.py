from django.urls import path

from . import api

urlpatterns = [
    path("schedules/", api.ScheduleListView.as_view(), name="appt-schedule-list"),
    path(
        "schedules/<str:schedule_id>/templates/",
        api.TemplateCreateView.as_view(),
        name="appt-template-create",
    ),
    path(
        "schedules/<str:schedule_id>/generate/",
        api.ScheduleGenerateView.as_view(),
        name="appt-schedule-generate",
    ),
    path("templates/<str:template_id>/", api.TemplateDetailView.as_view(), name="appt-template"),
    path("exceptions/", api.ExceptionCreateView.as_view(), name="appt-exception-create"),
    path("holidays/", api.HolidayView.as_view(), name="appt-holidays"),
    path("slots/", api.SlotListView.as_view(), name="appt-slot-list"),
    path("bookings/", api.BookingListView.as_view(), name="appt-booking-list"),
    path("bookings/recurring/", api.RecurringBookingView.as_view(), name="appt-booking-recurring"),
    path("bookings/<str:booking_id>/", api.BookingDetailView.as_view(), name="appt-booking"),
    path(
        "bookings/<str:booking_id>/cancel/",
        api.BookingCancelView.as_view(),
        name="appt-booking-cancel",
    ),
    path(
        "bookings/<str:booking_id>/reschedule/",
        api.BookingRescheduleView.as_view(),
        name="appt-booking-reschedule",
    ),
    path(
        "bookings/<str:booking_id>/status/",
        api.BookingStatusView.as_view(),
        name="appt-booking-status",
    ),
    path("bookings/<str:booking_id>/ics/", api.BookingIcsView.as_view(), name="appt-booking-ics"),
    path("waitlist/", api.WaitlistView.as_view(), name="appt-waitlist"),
    path(
        "waitlist/<str:entry_id>/accept/",
        api.WaitlistAcceptView.as_view(),
        name="appt-waitlist-accept",
    ),
    path("due-list/", api.DueListView.as_view(), name="appt-due-list"),
]
