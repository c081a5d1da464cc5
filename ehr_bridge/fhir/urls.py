"""Routes under /fhir/R4/: the CapabilityStatement, then read, search (and create where a
type has it) for each type in ``resources.RESOURCE_TYPES``."""

from django.urls import URLPattern, path

from . import views
from .resources import RESOURCE_TYPES

urlpatterns: list[URLPattern] = [
    path("metadata", views.MetadataView.as_view(), name="fhir-metadata")
]
for _rt in RESOURCE_TYPES:
    _search = views.SearchCreateView if _rt.create is not None else views.SearchView
    urlpatterns += [
        path(_rt.name, _search.as_view(resource=_rt), name=f"fhir-{_rt.name.lower()}-search"),
        path(
            f"{_rt.name}/<str:resource_id>",
            views.ReadView.as_view(resource=_rt),
            name=f"fhir-{_rt.name.lower()}-read",
        ),
    ]
urlpatterns += [
    path("<str:resource_type>", views.UnsupportedTypeView.as_view()),
    path("<str:resource_type>/<path:rest>", views.UnsupportedTypeView.as_view()),
]
