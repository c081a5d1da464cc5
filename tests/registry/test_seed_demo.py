import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from appointments.models import Schedule, Slot
from ehr_bridge.models import Hl7Partner
from imaging.ecg.models import EcgRecord
from imaging.models import Study
from imaging.pathology.models import SlideConversion
from registry.identity import normalise_mobile, parse_resident_id
from registry.models import DicomApplicationEntity, Organisation, Patient


@pytest.mark.django_db(transaction=True)
def test_the_demo_county_is_complete_and_loading_it_twice_changes_nothing(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    call_command("seed_demo")
    counts = (
        Organisation.objects.count(),
        get_user_model().objects.count(),
        Patient.objects.count(),
        Study.objects.count(),
    )
    assert Organisation.objects.filter(kind="village_clinic").count() == 12
    assert Organisation.objects.filter(kind="township_centre").count() == 4
    assert get_user_model().objects.filter(username="dongshan.village").exists()
    patients = list(Patient.objects.all())
    assert len(patients) == 200
    for patient in patients:
        parsed = parse_resident_id(patient.id_number)
        assert (parsed.birth_date, parsed.sex) == (patient.birth_date, patient.sex)
        assert normalise_mobile(patient.mobile) == patient.mobile
    assert sum("I10" in p.chronic_conditions for p in patients) > 40
    assert sum("E11.9" in p.chronic_conditions for p in patients) > 20
    assert set(DicomApplicationEntity.objects.values_list("ae_title", flat=True)) >= {
        "DEMO_DR",
        "DEMO_ECG",
    }
    modalities = sorted(m for s in Study.objects.all() for m in s.modalities)
    assert modalities == ["CT", "ECG", "SM"]
    assert all(s.patient_id for s in Study.objects.all())
    assert EcgRecord.objects.count() == 1
    assert SlideConversion.objects.get().status == "done"
    assert Schedule.objects.count() == 4 and Slot.objects.filter(status="open").exists()
    assert Hl7Partner.objects.filter(
        sending_application="DEMO_HIS", sending_facility="COUNTY_HOSP"
    ).exists()
    call_command("seed_demo")
    assert counts == (
        Organisation.objects.count(),
        get_user_model().objects.count(),
        Patient.objects.count(),
        Study.objects.count(),
    )
    assert EcgRecord.objects.count() == 1 and SlideConversion.objects.count() == 1
