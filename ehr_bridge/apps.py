from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EhrBridgeConfig(AppConfig):
    name = "ehr_bridge"
    verbose_name = _("EHR bridge")

    def ready(self) -> None:
        from registry.demo import register_seeder

        from . import bookings, checks, demo, pacs, reports  # noqa: F401 - they register

        register_seeder(demo.seed)
