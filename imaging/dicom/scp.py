"""The DIMSE server (pynetdicom): C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE.

An adapter: it identifies the calling organisation from its registered AE title and host,
decodes the request, calls one service or selector, and encodes the answer. No database
transaction spans an association; each stored instance is committed on its own before its
success status is sent.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from registry.models import DicomApplicationEntity, Organisation

from .. import attributes, query, selectors, services
from ..models import Instance, Series, Study
from .parse import InvalidDicom

logger = logging.getLogger(__name__)

QR_FIND = (PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind)
QR_GET = (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet)
QR_MOVE = (PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove)
LEVELS = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
STATUS_PENDING = 0xFF00
STATUS_IDENTIFIER_INVALID = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000
STATUS_OUT_OF_RESOURCES_MATCHES = 0xA700
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
STATUS_CANCELLED = 0xFE00
MAX_MATCHES = 65535


class HuizhenAE(AE):
    """An AE whose accepted calling AE titles are the ones registered in the registry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known_cache: tuple[float, list[str]] = (0.0, [])
        self._known_lock = threading.Lock()

    @property  # type: ignore[override]
    def require_calling_aet(self) -> list[str]:
        if not settings.HUIZHEN_DICOM_REQUIRE_KNOWN_AE:
            return []
        with self._known_lock:
            fetched_at, titles = self._known_cache
            if time.monotonic() - fetched_at > 10:
                try:
                    titles = list(
                        DicomApplicationEntity.objects.filter(
                            organisation__is_active=True
                        ).values_list("ae_title", flat=True)
                    )
                finally:
                    close_old_connections()
                # An empty list would mean "accept anyone" to pynetdicom.
                titles = titles or ["\x00no-known-ae"]
                self._known_cache = (time.monotonic(), titles)
            return titles

    @require_calling_aet.setter
    def require_calling_aet(self, value: list[str]) -> None:  # pragma: no cover - unused
        raise AttributeError("calling AE titles come from the registry")


def _calling(event: Any) -> tuple[str, str]:
    requestor = event.assoc.requestor
    return requestor.ae_title.strip(), requestor.address


def _organisation(event: Any) -> Organisation | None:
    """The organisation the calling AE belongs to; None when unknown and allowed."""
    cached = getattr(event.assoc, "_huizhen_org", False)
    if cached is not False:
        return cached
    title, host = _calling(event)
    entity = selectors.known_application_entity(title, host)
    org = entity.organisation if entity else None
    event.assoc._huizhen_org = org
    return org


def _default_organisation() -> Organisation | None:
    """Where objects from unregistered callers go when the allow-list is switched off."""
    code = getattr(settings, "HUIZHEN_DICOM_DEFAULT_ORGANISATION", "")
    query_set = Organisation.objects.filter(is_active=True)
    if code:
        return query_set.filter(external_id=code).first()
    return query_set.filter(parent__isnull=True).order_by("pk").first()


def handle_open(event: Any) -> None:
    sock = event.assoc.dul.socket
    raw = getattr(sock, "socket", None)
    if raw is not None:
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def handle_accepted(event: Any) -> None:
    if not settings.HUIZHEN_DICOM_REQUIRE_KNOWN_AE:
        return
    try:
        if _organisation(event) is None:
            title, host = _calling(event)
            logger.warning(
                "DICOM association from an unregistered host refused",
                extra={"calling_ae": title, "peer": host},
            )
            event.assoc.abort()
    finally:
        close_old_connections()


def handle_close(event: Any) -> None:
    connection.close()


def handle_echo(event: Any) -> int:
    return 0x0000


def handle_store(event: Any) -> int:
    try:
        org = _organisation(event) or (
            None if settings.HUIZHEN_DICOM_REQUIRE_KNOWN_AE else _default_organisation()
        )
        if org is None:
            return STATUS_UNABLE_TO_PROCESS
        title, _host = _calling(event)
        raw = event.encoded_dataset()
        result = services.store_instance(
            raw, source=services.Source(organisation=org, calling_ae_title=title)
        )
        return result.dimse_status
    except InvalidDicom as exc:
        title, _host = _calling(event)
        logger.warning(
            "C-STORE refused",
            extra={"calling_ae": title, "status": f"0x{exc.status:04X}", "reason": str(exc)},
        )
        return exc.status
    except Exception:  # noqa: BLE001 - a failure status, never a dropped association
        logger.exception("C-STORE failed")
        return STATUS_UNABLE_TO_PROCESS
    finally:
        close_old_connections()


# --- query --------------------------------------------------------------------------------


def _criteria(identifier: Dataset) -> tuple[list[tuple[str, str]], list[str]]:
    """(matching keys with values, every requested keyword)."""
    criteria, requested = [], []
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        requested.append(keyword)
        value = element.value
        if value in (None, "", b"") or element.VR == "SQ":
            continue
        if isinstance(value, MultiValue | list | tuple):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        criteria.append((keyword, text))
    return criteria, requested


def _scope(org: Organisation) -> Any:
    return selectors.studies_visible_to_organisations([org])


def find_matches(org: Organisation, level: str, criteria: list[tuple[str, str]]) -> Iterator[Any]:
    studies = _scope(org)
    if level in ("patient", "study"):
        return iter(studies.filter(query.filters("study", criteria)).order_by("-study_date", "pk"))
    if level == "series":
        return iter(
            Series.objects.filter(study__in=studies)
            .filter(query.filters("series", criteria))
            .select_related("study")
            .order_by("study_id", "series_number", "pk")
        )
    return iter(
        Instance.objects.filter(series__study__in=studies)
        .filter(query.filters("instance", criteria))
        .select_related("series__study")
        .order_by("series_id", "instance_number", "pk")
    )


def _as_dataset(json_dict: dict[str, Any], requested: list[str], level: str) -> Dataset:
    ds = Dataset.from_json(json_dict)
    keep = set(requested) | {"SpecificCharacterSet"}
    for element in list(ds):
        if element.keyword not in keep:
            del ds[element.tag]
    for keyword in requested:  # return every requested key, empty when unknown
        if keyword not in ds:
            setattr(ds, keyword, None)
    ds.SpecificCharacterSet = attributes.UTF8
    ds.QueryRetrieveLevel = level
    return ds


def handle_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
    try:
        org = _organisation(event)
        identifier = event.identifier
        level_name = str(identifier.get("QueryRetrieveLevel", "")).upper()
        if org is None or level_name not in LEVELS:
            yield STATUS_IDENTIFIER_INVALID, None
            return
        level = LEVELS[level_name]
        criteria, requested = _criteria(identifier)
        try:
            matches = find_matches(org, level, criteria)
        except query.BadQuery:
            yield STATUS_IDENTIFIER_INVALID, None
            return
        seen_patients: set[tuple[str, str]] = set()
        for row in matches:
            if event.is_cancelled:
                yield STATUS_CANCELLED, None
                return
            if level == "patient":
                key = (row.dicom_patient_id, row.dicom_patient_name)
                if key in seen_patients:
                    continue
                seen_patients.add(key)
                data = attributes.study_json(row)
            elif level == "study":
                data = attributes.study_json(row, include=requested, metadata=_first_metadata(row))
            elif level == "series":
                data = attributes.series_json(
                    row, include=requested, metadata=_first_series_metadata(row)
                )
            else:
                data = attributes.instance_json(row, include=requested)
            yield STATUS_PENDING, _as_dataset(data, requested, level_name)
        yield 0x0000, None
    except Exception:  # noqa: BLE001 - a failure status, never a dropped association
        logger.exception("C-FIND failed")
        yield STATUS_UNABLE_TO_PROCESS, None
    finally:
        close_old_connections()


def _first_metadata(study: Study) -> dict[str, Any] | None:
    return (
        Instance.objects.filter(series__study=study)
        .order_by("pk")
        .values_list("metadata", flat=True)
        .first()
    )


def _first_series_metadata(series: Series) -> dict[str, Any] | None:
    return (
        Instance.objects.filter(series=series).order_by("pk").values_list("metadata", flat=True)
    ).first()


# --- retrieve -----------------------------------------------------------------------------


def retrieve_instances(org: Organisation, identifier: Dataset) -> list[Instance]:
    level_name = str(identifier.get("QueryRetrieveLevel", "")).upper()
    if level_name not in LEVELS:
        raise query.BadQuery("QueryRetrieveLevel missing")
    criteria, _requested = _criteria(identifier)
    if level_name == "PATIENT":
        criteria = [(k, v) for k, v in criteria if k in ("PatientID", "PatientName")]
        if not criteria:
            raise query.BadQuery("Patient ID required")
    studies = _scope(org)
    return list(
        Instance.objects.filter(series__study__in=studies)
        .filter(query.filters("instance", criteria))
        .select_related("series__study")
        .order_by("series__study_id", "series_id", "instance_number", "pk")[: MAX_MATCHES + 1]
    )


def _read(instance: Instance) -> Dataset:
    with default_storage.open(instance.storage_key, "rb") as handle:
        return dcmread(handle)


def _contexts_for(instances: list[Instance]) -> list[Any]:
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in instances})
    contexts = []
    for sop_class, ts in pairs[:128]:
        syntaxes = [ts] + [s for s in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if s != ts]
        contexts.append(build_context(sop_class, syntaxes))
    return contexts


def _fit(ds: Dataset, accepted: list[Any]) -> Dataset:
    """Decompress an object whose transfer syntax the peer did not accept, when the peer
    accepted its SOP class uncompressed."""
    ts = ds.file_meta.TransferSyntaxUID
    sop_class = ds.SOPClassUID
    offered = {cx.transfer_syntax[0] for cx in accepted if cx.abstract_syntax == sop_class}
    if ts in offered or not offered or not UID(ts).is_compressed:
        return ds
    ds.decompress(generate_instance_uid=False)  # same object, same identity
    if ExplicitVRLittleEndian not in offered and ImplicitVRLittleEndian in offered:
        # Re-encode so that sequences and VRs follow the implicit syntax throughout.
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        buffer = io.BytesIO()
        ds.save_as(buffer, implicit_vr=True, little_endian=True, enforce_file_format=True)
        ds = dcmread(io.BytesIO(buffer.getvalue()))
    return ds


def _store_association(event: Any, destination_title: str) -> Any:
    """The C-MOVE sub-association pynetdicom opened to the destination (same AE)."""
    for assoc in event.assoc.ae.active_associations:
        if assoc.is_requestor and assoc.acceptor.ae_title.strip() == destination_title:
            return assoc
    return None


def _datasets(
    event: Any, instances: list[Instance], *, destination_title: str = ""
) -> Iterator[tuple[int, Dataset | None]]:
    for instance in instances:
        if event.is_cancelled:
            yield STATUS_CANCELLED, None
            return
        try:
            ds = _read(instance)
        except Exception:  # noqa: BLE001 - one unreadable file fails one sub-operation
            logger.exception("stored instance unreadable", extra={"instance": instance.pk})
            yield STATUS_UNABLE_TO_PROCESS, None
            continue
        if destination_title:
            peer = _store_association(event, destination_title)
            accepted = peer.accepted_contexts if peer is not None else []
        else:
            accepted = [cx for cx in event.assoc.accepted_contexts if cx.as_scu]
        try:
            ds = _fit(ds, accepted)
        except Exception:  # noqa: BLE001 - no decoder for this object
            logger.warning("could not decompress for the peer", extra={"instance": instance.pk})
            yield STATUS_UNABLE_TO_PROCESS, None
            continue
        yield STATUS_PENDING, ds


def handle_get(event: Any) -> Iterator[Any]:
    try:
        org = _organisation(event)
        if org is None:
            yield 0
            return
        try:
            instances = retrieve_instances(org, event.identifier)
        except query.BadQuery:
            yield 0
            return
        yield len(instances)
        yield from _datasets(event, instances)
    finally:
        close_old_connections()


def handle_move(event: Any) -> Iterator[Any]:
    try:
        org = _organisation(event)
        destination = (
            DicomApplicationEntity.objects.filter(
                ae_title=event.move_destination.decode().strip()
                if isinstance(event.move_destination, bytes)
                else str(event.move_destination).strip(),
                port__isnull=False,
            )
            .exclude(host="")
            .first()
        )
        if org is None or destination is None:
            yield None, None
            return
        try:
            instances = retrieve_instances(org, event.identifier)
        except query.BadQuery:
            yield destination.host, destination.port
            yield 0
            return
        yield destination.host, destination.port, {"contexts": _contexts_for(instances) or None}
        yield len(instances)
        yield from _datasets(event, instances, destination_title=destination.ae_title)
    finally:
        close_old_connections()


def build_ae() -> HuizhenAE:
    ae = HuizhenAE(ae_title=settings.HUIZHEN_DICOM_AE_TITLE)
    ae.maximum_pdu_size = 0  # no limit: as large as the peer allows
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.maximum_associations = 32
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(
            context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scp_role=True, scu_role=True
        )
    ae.add_supported_context(Verification)
    for sop_class in (*QR_FIND, *QR_GET, *QR_MOVE):
        ae.add_supported_context(sop_class)
    # Outgoing C-STORE sub-operations of C-GET use the requestor's contexts; C-MOVE builds
    # its own from what is sent.
    return ae


HANDLERS = [
    (evt.EVT_CONN_OPEN, handle_open),
    (evt.EVT_ACCEPTED, handle_accepted),
    (evt.EVT_CONN_CLOSE, handle_close),
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_C_GET, handle_get),
    (evt.EVT_C_MOVE, handle_move),
]


def start(host: str, port: int, *, block: bool) -> Any:
    """Start the server; with ``block=False`` it runs in threads and the server is returned."""
    ae = build_ae()
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    return ae.start_server((host, port), block=block, evt_handlers=HANDLERS)


__all__ = ["UID", "build_ae", "start"]
