"""De-identification of DICOM objects per PS3.15 Annex E, Basic Application Level
Confidentiality Profile, with the Retain Safe Private option off and, optionally, the
Retain Longitudinal Temporal Information with Modified Dates option (a date shift).

Pure: works on pydicom datasets. UIDs are replaced by ``2.25.<integer>`` derived from a
keyed hash, so the same UID always maps to the same replacement (series stay series,
references between objects still resolve) and the mapping cannot be reversed without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

# Annex E action codes reduced to what they mean for stored values.
# D: replace with a dummy value; Z: empty; X: remove; U: replace UID.
_DUMMY = {
    "PatientName": "ANONYMOUS",
    "PatientID": "ANON",
}
_EMPTY = {
    "AccessionNumber",
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ContentCreatorName",
}
_REMOVE = {
    "AcquisitionComments",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "Arbitrary",
    "AuthorObserverSequence",
    "BranchOfService",
    "ConsultingPhysicianName",
    "ContentCreatorIdentificationCodeSequence",
    "CountryOfResidence",
    "CurrentPatientLocation",
    "CurveDate",
    "CurveTime",
    "CustodialOrganizationSequence",
    "DataSetTrailingPadding",
    "DerivationDescription",
    "DeviceSerialNumber",
    "DigitalSignaturesSequence",
    "EthnicGroup",
    "FrameComments",
    "ImageComments",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionName",
    "InsurancePlanIdentification",
    "IssuerOfAdmissionID",
    "IssuerOfPatientID",
    "MedicalAlerts",
    "MedicalRecordLocator",
    "MilitaryRank",
    "ModifiedAttributesSequence",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "OriginalAttributesSequence",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "OverlayDate",
    "OverlayTime",
    "PatientAddress",
    "PatientAge",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientComments",
    "PatientInsurancePlanCodeSequence",
    "PatientMotherBirthName",
    "PatientReligiousPreference",
    "PatientSize",
    "PatientState",
    "PatientTelephoneNumbers",
    "PatientWeight",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "PregnancyStatus",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "RequestAttributesSequence",
    "RequestingPhysician",
    "RequestingService",
    "ResponsibleOrganization",
    "ResponsiblePerson",
    "ScheduledPerformingPhysicianName",
    "SmokingStatus",
    "SpecialNeeds",
    "StationName",
    "StudyComments",
    "TextComments",
    "TextString",
    "Occupation",
    "ReasonForStudy",
    "RequestedProcedureID",
    "AdmissionID",
    "ServiceEpisodeID",
    "VisitComments",
}
_DATE_VRS = {"DA", "DT"}


def replacement_uid(uid: str, key: bytes) -> str:
    digest = hmac.new(key, uid.encode(), hashlib.sha256).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _shift(value: str, vr: str, days: int) -> str:
    if not value:
        return value
    try:
        if vr == "DA":
            shifted = datetime.strptime(value[:8], "%Y%m%d").date() + timedelta(days=days)
            return shifted.strftime("%Y%m%d")
        head = datetime.strptime(value[:8], "%Y%m%d") + timedelta(days=days)
        return head.strftime("%Y%m%d") + value[8:]
    except ValueError:
        return ""


def _clean(ds: Dataset, key: bytes, date_shift_days: int | None) -> None:
    for element in list(ds):
        tag = element.tag
        if tag.is_private:
            del ds[tag]
            continue
        keyword = element.keyword
        if keyword in _REMOVE:
            del ds[tag]
        elif keyword in _DUMMY:
            element.value = _DUMMY[keyword]
        elif keyword in ("StudyDate", "StudyTime") and date_shift_days is not None:
            if element.VR == "DA":
                element.value = _shift(str(element.value), "DA", date_shift_days)
        elif keyword in _EMPTY:
            element.value = "" if element.VR != "SQ" else Sequence()
        elif element.VR == "UI" and keyword not in (
            "SOPClassUID",
            "TransferSyntaxUID",
            "ReferencedSOPClassUID",
            "MediaStorageSOPClassUID",
            "ImplementationClassUID",
            "CodingSchemeUID",
            "RelatedGeneralSOPClassUID",
            "AffectedSOPClassUID",
        ):
            if element.value:
                if element.VM > 1:
                    element.value = [replacement_uid(str(v), key) for v in element.value]
                else:
                    element.value = replacement_uid(str(element.value), key)
        elif element.VR in _DATE_VRS:
            if date_shift_days is None:
                element.value = ""
            elif element.VM <= 1:
                element.value = _shift(str(element.value or ""), element.VR, date_shift_days)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item, key, date_shift_days)


def deidentify(ds: Dataset, *, key: bytes, date_shift_days: int | None = None) -> Dataset:
    """De-identify ``ds`` in place and return it."""
    _clean(ds, key, date_shift_days)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 Basic Profile" + (
        "; dates shifted" if date_shift_days is not None else ""
    )
    ds.DeidentificationMethodCodeSequence = Sequence(
        [_code("113100", "Basic Application Confidentiality Profile")]
    )
    if date_shift_days is not None:
        ds.DeidentificationMethodCodeSequence.append(
            _code("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
        )
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if date_shift_days is not None else "REMOVED"
    )
    return ds


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


__all__ = ["deidentify", "replacement_uid"]
