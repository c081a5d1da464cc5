from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.my_consults_page, name="consult-mine"),
    path("new/", pages.new_consult_page, name="consult-new"),
    path("worklist/", pages.worklist_page, name="consult-worklist-page"),
    path("critical/", pages.critical_inbox_page, name="consult-critical-inbox"),
    path("statistics/", pages.statistics_page, name="consult-statistics-page"),
    path("room/<str:session_id>/", pages.room_page, name="consult-room"),
    path("join/<str:token>/", pages.patient_join_page, name="consult-join"),
    path("<str:consult_id>/", pages.consult_page, name="consult-page"),
]
