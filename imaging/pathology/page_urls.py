from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.slide_list_page, name="pathology-slides"),
    path("viewer/<str:study_uid>/", pages.viewer_page, name="pathology-viewer"),
]
