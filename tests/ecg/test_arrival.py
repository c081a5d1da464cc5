"""ECG waveforms that arrive in the archive (DIMSE, STOW) are measured without anyone asking."""

from imaging import services
from imaging.ecg.models import EcgRecord
from tests.imaging.dicom_factory import make_ecg


def test_a_stored_waveform_is_measured_once(
    db, archive, community, django_capture_on_commit_callbacks
):
    source = services.Source(organisation=community.township, calling_ae_title="DEMO_ECG")
    raw = make_ecg(patient_id="ECGARR1")
    with django_capture_on_commit_callbacks(execute=True):
        services.store_instance(raw, source=source)
    record = EcgRecord.objects.get()
    assert record.organisation == community.township
    with django_capture_on_commit_callbacks(execute=True):
        again = services.store_instance(raw, source=source)
    assert again.outcome == services.DUPLICATE
    assert EcgRecord.objects.count() == 1
