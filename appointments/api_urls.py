from django.urls import path

from . import api, chronic_api

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
    path("enrolments/", chronic_api.EnrolmentCreateView.as_view(), name="appt-enrol"),
    path(
        "enrolments/<str:enrolment_id>/followups/",
        chronic_api.FollowUpCreateView.as_view(),
        name="appt-followup-create",
    ),
    path(
        "programmes/<slug:code>/rules/",
        chronic_api.ProgrammeRulesView.as_view(),
        name="appt-programme-rules",
    ),
    path(
        "patients/<str:patient_id>/readings/",
        chronic_api.PatientReadingsView.as_view(),
        name="appt-readings",
    ),
    path(
        "patients/<str:patient_id>/readings/chart.svg",
        chronic_api.PatientChartView.as_view(),
        name="appt-readings-chart",
    ),
    path(
        "referrals/<str:referral_id>/done/",
        chronic_api.ReferralDoneView.as_view(),
        name="appt-referral-done",
    ),
    path("contracts/coverage/", chronic_api.CoverageView.as_view(), name="appt-coverage"),
    path("contracts/coverage.csv", chronic_api.CoverageCsvView.as_view(), name="appt-coverage-csv"),
]
