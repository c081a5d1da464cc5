from django.urls import include, path

urlpatterns = [
    path("", include("imaging.dicomweb.urls")),
]
