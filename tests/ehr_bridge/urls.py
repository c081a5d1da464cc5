"""The project's URLs with the HL7 message log API mounted where config/urls.py mounts it."""

from django.urls import include, path

from config.urls import urlpatterns as project

urlpatterns = [path("api/v1/hl7/", include("ehr_bridge.api_urls")), *project]
