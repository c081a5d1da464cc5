from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.study_list_page, name="imaging-studies"),
    path("viewer/<str:study_uid>/", pages.viewer_page, name="imaging-viewer"),
]
