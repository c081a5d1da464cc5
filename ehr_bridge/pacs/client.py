"""The DIMSE client side of the external PACS: associate, C-FIND, C-GET/C-MOVE, C-STORE.

Network only: nothing here touches the database. Every call is bounded by timeouts; a PACS
that cannot be reached or stops answering raises PacsUnavailable (503), a failure status
PacsFailed (502).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    EncapsulatedPDFStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from registry.errors import DomainError

from ..models import (
    PacsRetrieve,
    RemotePacs,
)

logger = logging.getLogger(__name__)

TIMEOUT = 30  # seconds for ACSE, DIMSE and network reads
STATUS_SUCCESS, STATUS_PENDING = 0x0000, (0xFF00, 0xFF01)


class PacsUnavailable(DomainError):
    """The remote PACS could not be reached or refused the association."""

    status_code = 503
    default_code = "pacs_unavailable"


class PacsFailed(DomainError):
    """The remote PACS answered with a failure."""

    status_code = 502
    default_code = "pacs_failed"


def _ae(pacs: RemotePacs) -> AE:
    ae = AE(ae_title=pacs.calling_ae_title or "HUIZHEN")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.connection_timeout = 10
    return ae


def associate(pacs: RemotePacs, ae: AE, **kwargs: Any) -> Any:
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title, **kwargs)
    if not assoc.is_established:
        logger.warning(
            "association with a remote PACS failed",
            extra={"pacs": pacs.pk, "host": pacs.host, "port": pacs.port},
        )
        raise PacsUnavailable(
            _("The PACS %(name)s cannot be reached or refused the connection.")
            % {"name": pacs.name}
        )
    return assoc


def find_studies(pacs: RemotePacs, patient_id: str, study_uid: str = "") -> list[Dataset]:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    query.PatientName = ""
    query.StudyInstanceUID = study_uid
    query.StudyDate = ""
    query.StudyTime = ""
    query.StudyDescription = ""
    query.AccessionNumber = ""
    query.ModalitiesInStudy = ""
    query.NumberOfStudyRelatedInstances = ""
    ae = _ae(pacs)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(pacs, ae)
    found: list[Dataset] = []
    try:
        for status, identifier in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind
        ):
            if not status:  # no answer within the timeouts, or the association aborted
                raise PacsUnavailable(
                    _("The PACS %(name)s stopped answering.") % {"name": pacs.name}
                )
            code = int(status.Status)
            if code in STATUS_PENDING and identifier is not None:
                found.append(identifier)
            elif code != STATUS_SUCCESS:
                raise PacsFailed(
                    _("The PACS %(name)s refused the query (status 0x%(status)04X).")
                    % {"name": pacs.name, "status": code}
                )
    finally:
        if assoc.is_established:
            assoc.release()
    return found


def retrieve(pacs: RemotePacs, study_uid: str, folder: Path) -> tuple[int, int]:
    """C-GET (objects written to ``folder``) or C-MOVE to our own AE. Returns (completed,
    failed) sub-operations as the PACS reports them."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    ae = _ae(pacs)
    completed = failed = 0
    if pacs.retrieve == PacsRetrieve.MOVE:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = associate(pacs, ae)
        responses = assoc.send_c_move(
            query, pacs.calling_ae_title, StudyRootQueryRetrieveInformationModelMove
        )
    else:
        counter = iter(range(1, 1_000_000))

        def on_store(event: Any) -> int:
            path = folder / f"{next(counter):06d}.dcm"
            path.write_bytes(event.encoded_dataset(include_meta=True))
            return STATUS_SUCCESS

        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        contexts = StoragePresentationContexts[:120]
        for context in contexts:
            ae.add_requested_context(context.abstract_syntax)
        roles = [build_role(c.abstract_syntax, scp_role=True) for c in contexts]
        assoc = associate(pacs, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        responses = assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
    try:
        last = None
        for status, _identifier in responses:
            if not status:
                raise PacsUnavailable(
                    _("The PACS %(name)s stopped answering.") % {"name": pacs.name}
                )
            last = status
        if last is not None:
            completed = int(last.get("NumberOfCompletedSuboperations", 0) or 0)
            failed = int(last.get("NumberOfFailedSuboperations", 0) or 0)
            code = int(last.Status)
            if code not in (STATUS_SUCCESS, 0xB000) and not completed:
                raise PacsFailed(
                    _("The PACS %(name)s could not send the study (status 0x%(status)04X).")
                    % {"name": pacs.name, "status": code}
                )
    finally:
        if assoc.is_established:
            assoc.release()
    return completed, failed


def c_store(pacs: RemotePacs, ds: Dataset) -> None:
    ae = _ae(pacs)
    ae.add_requested_context(EncapsulatedPDFStorage, ExplicitVRLittleEndian)
    assoc = associate(pacs, ae)
    try:
        status = assoc.send_c_store(ds)
        if not status:
            raise PacsUnavailable(_("The PACS %(name)s stopped answering.") % {"name": pacs.name})
        code = int(status.Status)
        if code != STATUS_SUCCESS and not 0xB000 <= code <= 0xBFFF:
            raise PacsFailed(
                _("The PACS %(name)s refused the report (status 0x%(status)04X).")
                % {"name": pacs.name, "status": code}
            )
    finally:
        if assoc.is_established:
            assoc.release()
