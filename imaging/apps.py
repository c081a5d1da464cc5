from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImagingConfig(AppConfig):
    name = "imaging"
    verbose_name = _("Imaging archive")

    def ready(self) -> None:
        from registry.demo import register_seeder

        from . import (
            demo,
            handlers,  # noqa: F401  (registers the event subscribers)
        )
        from .ecg import handlers as ecg_handlers  # noqa: F401

        register_seeder(demo.seed)
