from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EhrBridgeConfig(AppConfig):
    name = "ehr_bridge"
    verbose_name = _("EHR bridge")
