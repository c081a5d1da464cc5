"""Identifier systems, code systems and extensions used by the FHIR facade.

These URIs are part of Huizhen's public interface: partners store them beside the values.
Change one only with a migration note for every partner.

Identifiers
- ``RESIDENT_ID``: the 18-character resident identity card number (公民身份号码,
  GB 11643-1999), type ``NI`` of v2-0203. Upper-case ``X`` check character.
- ``AUTHORITY_PREFIX + <authority>``: a patient identifier issued by an assigning authority
  (a hospital's HL7 facility code such as ``COUNTY_HOSP``); its type coding names the kind
  (``MR`` medical record number, ``INS`` health insurance number, ``PI``, ``OTHER``) in
  ``IDENTIFIER_KIND``, plus the v2-0203 code where one means the same (MR, PI).
- ``PRACTITIONER_LICENCE``: a physician's practising licence number (医师执业证书编码).
- ``DIVISION_CODE``: the six-digit administrative division code (行政区划代码, GB/T 2260).
- ``HL7_FACILITY`` / ``DICOM_AE_TITLE``: an organisation's HL7 facility codes and DICOM AE
  titles, so that a partner can map its own messages to a FHIR Organization.
- ``DICOM_UID``: DICOM UIDs as FHIR R4 specifies them (``urn:dicom:uid`` with an
  ``urn:oid:`` value).

Names: the Chinese name is the first HumanName (``use`` official, ``text`` the full name,
``family`` the surname, ``given`` the rest, marked ideographic with the ISO 21090
EN-representation extension); the pinyin spelling, when known, is a second official
HumanName marked alphabetic. A reader that ignores the extension still finds the Chinese
name first.

Addresses: ``Address.text`` is the address as written; the division code of the address is
in the ``DIVISION_CODE_EXTENSION`` extension (valueCode), and ``country`` is ``CN``.
"""

from __future__ import annotations

BASE = "http://huizhen.example/fhir"

RESIDENT_ID = f"{BASE}/sid/cn-resident-id"
AUTHORITY_PREFIX = "urn:huizhen:authority:"
PRACTITIONER_LICENCE = f"{BASE}/sid/cn-practitioner-licence"
DIVISION_CODE = f"{BASE}/sid/cn-division-code"
HL7_FACILITY = f"{BASE}/sid/hl7-facility"
DICOM_AE_TITLE = f"{BASE}/sid/dicom-ae-title"
DICOM_UID = "urn:dicom:uid"

IDENTIFIER_KIND = f"{BASE}/CodeSystem/identifier-kind"
ORGANISATION_KIND = f"{BASE}/CodeSystem/organisation-kind"
PROFESSIONAL_TITLE = f"{BASE}/CodeSystem/professional-title"
DIVISION_CODE_EXTENSION = f"{BASE}/StructureDefinition/address-division-code"

V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENDPOINT_CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
RESTFUL_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"

# Identifier kinds whose v2-0203 code means the same as ours.
V2_TYPE_OF_KIND = {"MR": "MR", "PI": "PI"}
# v2-0203 codes a partner may send, read as our kinds.
KIND_OF_V2_TYPE = {"MR": "MR", "PI": "PI", "MB": "INS", "SN": "INS"}


def authority_system(authority: str) -> str:
    return f"{AUTHORITY_PREFIX}{authority}"


def dicom_uid(uid: str) -> str:
    return f"urn:oid:{uid}"


# Consults: the kind of consult asked for (ServiceRequest.category, DiagnosticReport.code).
CONSULT_TYPE = f"{BASE}/CodeSystem/consult-type"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
VISIT_TYPE = f"{BASE}/CodeSystem/visit-type"

# Observations of home and visit readings (LOINC; UCUM units).
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC_BP_PANEL = "85354-9"  # Blood pressure panel with all children optional
LOINC_SYSTOLIC = "8480-6"  # Systolic blood pressure
LOINC_DIASTOLIC = "8462-4"  # Diastolic blood pressure
LOINC_GLUCOSE = "15074-8"  # Glucose [Moles/volume] in Blood
LOINC_GLUCOSE_FASTING = "14771-0"  # Fasting glucose [Moles/volume] in Serum or Plasma
