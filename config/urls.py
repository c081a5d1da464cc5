from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from registry import health, pages

urlpatterns = [
    path("", pages.home_page, name="home"),
    path("login/", pages.sign_in_page, name="login"),
    path("logout/", pages.sign_out_page, name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("registry.urls")),
    path("api/v1/imaging/", include("imaging.api_urls")),
    path("api/v1/ecg/", include("imaging.ecg.api_urls")),
    path("api/v1/pathology/", include("imaging.pathology.urls")),
    path("api/v1/consult/", include("consult.api_urls")),
    path("api/v1/appointments/", include("appointments.api_urls")),
    path("api/v1/hl7/", include("ehr_bridge.api_urls")),
    path("consult/", include("consult.page_urls")),
    path("portal/", include("appointments.page_urls")),
    path("imaging/", include("imaging.page_urls")),
    path("ecg/", include("imaging.ecg.page_urls")),
    path("pathology/", include("imaging.pathology.page_urls")),
    path("dicomweb/", include("imaging.urls")),
    path("fhir/R4/", include("ehr_bridge.fhir.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

admin.site.site_header = settings.HUIZHEN_SITE_NAME
admin.site.site_title = settings.HUIZHEN_SITE_NAME
