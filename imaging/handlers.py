"""Subscribers to domain events about the archive."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation
from django.utils.translation import gettext as _

from registry.access import CLINICAL_ROLES
from registry.events import Event, subscribe
from registry.models import NotificationChannel
from registry.notifications import notify

from .models import Study


@subscribe("imaging.study_arrived", name="imaging.notify_new_study")
def notify_new_study(event: Event) -> None:
    """Tell the clinical staff of the sending organisation (and of the patient's home
    organisation) that a study arrived, so that they can attach it to a consult."""
    study = (
        Study.objects.select_related("patient", "organisation")
        .filter(external_id=event.payload["study"])
        .first()
    )
    if study is None:
        return
    orgs = {study.organisation_id}
    if study.patient_id:
        orgs.add(study.patient.home_organisation_id)
    staff = (
        get_user_model()
        .objects.filter(
            is_active=True,
            memberships__is_active=True,
            memberships__organisation_id__in=orgs,
            memberships__role__in=CLINICAL_ROLES,
        )
        .distinct()
    )
    modalities = "/".join(study.modalities) or "DICOM"
    with translation.override(settings.LANGUAGE_CODE):
        title = _("New %(modality)s study") % {"modality": modalities}
        body = _("A study arrived from %(organisation)s.") % {
            "organisation": study.organisation.name
        }
    for user in staff:
        notify(
            user=user,
            category="imaging.study_arrived",
            title=title,
            body=body,
            data={
                "study": str(study.external_id),
                "study_instance_uid": study.study_instance_uid,
                "matched": study.patient_id is not None,
            },
            channels=(NotificationChannel.PUSH,),
        )
