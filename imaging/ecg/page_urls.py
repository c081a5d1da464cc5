from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.ecg_list_page, name="ecg-list"),
    path("<str:record_id>/", pages.ecg_viewer_page, name="ecg-viewer"),
]
