from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EhrBridgeConfig(AppConfig):
    name = "ehr_bridge"
    verbose_name = _("EHR bridge")

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the deploy checks
