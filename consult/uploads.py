"""Attachments: study references and resumable file uploads.

An upload is announced with its name, kind and total size (``attachment_upload_start``),
then sent in chunks, each at the byte offset the server reports (``attachment_upload_chunk``);
a chunk at the wrong offset is refused with the offset to resume from. Chunks are stored as
parts in Django's default storage (which need not support appending, e.g. S3); when the last
byte arrives the parts are joined, the type is sniffed from the magic bytes, the SHA-256
computed and the parts removed.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext as _

from imaging.dicom.parse import UID_RE
from imaging.models import Study
from imaging.selectors import studies_visible_to
from registry import audit
from registry.access import Principal
from registry.errors import Conflict, NotFound, ValidationFailed

from .access import access_consult, is_requester_side, refuse
from .models import AttachmentKind, ConsultAttachment, ConsultRequest, UploadStatus
from .states import EDITABLE

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024

# (content type, magic prefix)
SIGNATURES = (
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("application/pdf", b"%PDF-"),
)
ALLOWED_FOR_KIND = {
    AttachmentKind.PHOTO: {"image/jpeg", "image/png"},
    AttachmentKind.PDF: {"application/pdf"},
    AttachmentKind.LAB_SHEET: {"image/jpeg", "image/png", "application/pdf"},
}


def max_upload_bytes() -> int:
    return int(getattr(settings, "HUIZHEN_CONSULT_MAX_UPLOAD_BYTES", DEFAULT_MAX_BYTES))


def sniff(head: bytes) -> str | None:
    for content_type, magic in SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


def _editable(principal: Principal, consult_id: uuid.UUID | str, action: str) -> ConsultRequest:
    visible = access_consult(principal, consult_id, action=action)
    consult = (
        ConsultRequest.objects.select_for_update(of=("self",))
        .select_related("patient", "requesting_organisation")
        .get(pk=visible.pk)
    )
    if not is_requester_side(principal, consult):
        raise refuse(principal, consult, action)
    if consult.state not in EDITABLE:
        raise Conflict(
            _("Attachments can be added to a draft or a returned request only."),
            code="not_editable",
        )
    return consult


def _audit(principal: Principal, consult: ConsultRequest, action: str, attachment) -> None:  # type: ignore[no-untyped-def]
    audit.record(
        actor=principal.actor,
        action=action,
        object_type="consult_attachment",
        object_id=attachment.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
        detail={"kind": attachment.kind},
    )


@transaction.atomic
def attachment_add_study(
    *, principal: Principal, consult_id: uuid.UUID | str, study_instance_uid: str
) -> ConsultAttachment:
    """Attach a study by its Study Instance UID. A study not archived yet is kept as a
    reference and linked when it arrives; one that exists but is hidden from the caller, or
    belongs to another patient, is refused as not found."""
    consult = _editable(principal, consult_id, "consult.attachment.add")
    uid = (study_instance_uid or "").strip()
    if not uid or len(uid) > 64 or not UID_RE.match(uid):
        raise ValidationFailed(
            _("This is not a Study Instance UID."), fields={"study_instance_uid": uid[:64]}
        )
    study = None
    if Study.objects.filter(study_instance_uid=uid).exists():
        study = studies_visible_to(principal).filter(study_instance_uid=uid).first()
        if study is None or (study.patient_id and study.patient_id != consult.patient_id):
            raise NotFound(_("No such study, series or instance."))
    if consult.attachments.filter(kind=AttachmentKind.STUDY, study_instance_uid=uid).exists():
        raise Conflict(_("This study is attached already."), code="duplicate")
    attachment = ConsultAttachment.objects.create(
        consult=consult,
        kind=AttachmentKind.STUDY,
        study_instance_uid=uid,
        study=study,
        uploaded_by=principal.user,
    )
    _audit(principal, consult, "consult.attachment.add", attachment)
    return attachment


_PART_NAME = re.compile(r"part-(\d{12})")
_SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


@transaction.atomic
def attachment_upload_start(
    *, principal: Principal, consult_id: uuid.UUID | str, kind: str, filename: str, size: int
) -> ConsultAttachment:
    consult = _editable(principal, consult_id, "consult.attachment.add")
    errors = {}
    if kind not in ALLOWED_FOR_KIND:
        errors["kind"] = _("Upload a photo, a PDF or a lab sheet.")
    if not isinstance(size, int) or size <= 0:
        errors["size"] = _("The file is empty.")
    elif size > max_upload_bytes():
        errors["size"] = _("The file is larger than %(limit)d MB.") % {
            "limit": max_upload_bytes() // (1024 * 1024)
        }
    if errors:
        raise ValidationFailed(_("This file cannot be attached."), fields=errors)
    attachment = ConsultAttachment.objects.create(
        consult=consult,
        kind=kind,
        filename=(_SAFE_NAME.sub("_", filename or "file")[-200:] or "file"),
        size=size,
        received_bytes=0,
        status=UploadStatus.UPLOADING,
        uploaded_by=principal.user,
    )
    _audit(principal, consult, "consult.attachment.upload_start", attachment)
    return attachment


def _part_key(attachment: ConsultAttachment, offset: int) -> str:
    return f"consult/uploads/{attachment.external_id}/part-{offset:012d}"


def _final_key(attachment: ConsultAttachment) -> str:
    return f"consult/{attachment.consult.external_id}/{attachment.external_id}"


@dataclass(frozen=True)
class ChunkResult:
    attachment: ConsultAttachment
    complete: bool


def _locked_upload(
    principal: Principal, consult_id: uuid.UUID | str, attachment_id: uuid.UUID | str
) -> ConsultAttachment:
    consult = _editable(principal, consult_id, "consult.attachment.upload")
    try:
        key = uuid.UUID(str(attachment_id))
    except ValueError as exc:
        raise NotFound(_("No such upload.")) from exc
    attachment = (
        ConsultAttachment.objects.select_for_update()
        .filter(consult=consult, external_id=key)
        .first()
    )
    if attachment is None:
        raise NotFound(_("No such upload."))
    attachment.consult = consult
    return attachment


def upload_offset(
    *, principal: Principal, consult_id: uuid.UUID | str, attachment_id: uuid.UUID | str
) -> ConsultAttachment:
    """Where to resume an upload (the bytes the server holds)."""
    visible = access_consult(principal, consult_id, action="consult.attachment.upload")
    attachment = ConsultAttachment.objects.filter(
        consult=visible, external_id=_uuid_or_404(attachment_id)
    ).first()
    if attachment is None:
        raise NotFound(_("No such upload."))
    return attachment


def _uuid_or_404(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(_("No such upload.")) from exc


@transaction.atomic
def attachment_upload_chunk(
    *,
    principal: Principal,
    consult_id: uuid.UUID | str,
    attachment_id: uuid.UUID | str,
    offset: int,
    total: int,
    data: bytes,
) -> ChunkResult:
    """Store one chunk at ``offset``. A chunk at another offset than the bytes received is
    refused (Conflict with ``offset``) so that the client resumes from the right place; a
    repeated chunk already stored is acknowledged without writing again."""
    attachment = _locked_upload(principal, consult_id, attachment_id)
    if attachment.status == UploadStatus.COMPLETE:
        return ChunkResult(attachment, True)
    if total != attachment.size:
        raise ValidationFailed(
            _("The total size differs from the size announced."), fields={"size": str(total)}
        )
    if not data:
        raise ValidationFailed(_("The chunk is empty."), fields={"chunk": "empty"})
    if len(data) > MAX_CHUNK_BYTES:
        raise ValidationFailed(_("The chunk is too large."), fields={"chunk": str(len(data))})
    end = offset + len(data)
    if end <= attachment.received_bytes:
        return ChunkResult(attachment, False)  # a retry of a chunk already stored
    if offset != attachment.received_bytes:
        raise Conflict(
            _("Resume the upload at byte %(offset)d.") % {"offset": attachment.received_bytes},
            code="wrong_offset",
            offset=attachment.received_bytes,
        )
    if end > attachment.size:
        raise ValidationFailed(
            _("The chunk goes past the announced size."), fields={"chunk": str(end)}
        )
    if offset == 0:
        content_type = sniff(data[:16])
        if content_type not in ALLOWED_FOR_KIND[attachment.kind]:
            raise ValidationFailed(
                _("This file type is not accepted: upload a JPEG or PNG photo or a PDF."),
                code="file_type",
                fields={"file": _("Not a JPEG, PNG or PDF file.")},
            )
        attachment.content_type = content_type
    part = _part_key(attachment, offset)
    if default_storage.exists(part):  # left by an attempt whose transaction rolled back
        default_storage.delete(part)
    default_storage.save(part, ContentFile(data))
    attachment.received_bytes = end
    fields = ["received_bytes", "content_type", "updated_at"]
    complete = end == attachment.size
    if complete:
        _assemble(attachment)
        fields += ["status", "sha256", "storage_key"]
    attachment.save(update_fields=fields)
    if complete:
        _audit(principal, attachment.consult, "consult.attachment.uploaded", attachment)
    return ChunkResult(attachment, complete)


def _part_offsets(attachment: ConsultAttachment) -> list[int]:
    folder = f"consult/uploads/{attachment.external_id}"
    try:
        _dirs, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for name in files if (m := _PART_NAME.fullmatch(name)))


def _assemble(attachment: ConsultAttachment) -> None:
    digest = hashlib.sha256()
    chunks = []
    for offset in _part_offsets(attachment):
        with default_storage.open(_part_key(attachment, offset), "rb") as handle:
            chunk = handle.read()
        digest.update(chunk)
        chunks.append(chunk)
    content = b"".join(chunks)
    if len(content) != attachment.size:
        raise Conflict(_("Parts of the upload are missing; start it again."), code="incomplete")
    stored = default_storage.save(_final_key(attachment), ContentFile(content))
    for offset in _part_offsets(attachment):
        default_storage.delete(_part_key(attachment, offset))
    attachment.storage_key = stored
    attachment.sha256 = digest.hexdigest()
    attachment.status = UploadStatus.COMPLETE


def attachment_open(
    *, principal: Principal, consult_id: uuid.UUID | str, attachment_id: uuid.UUID | str
) -> tuple[ConsultAttachment, object]:
    """The stored file of a complete upload, for anyone who may see the consult (audited)."""
    consult = access_consult(principal, consult_id, action="consult.attachment.read")
    attachment = ConsultAttachment.objects.filter(
        consult=consult, external_id=_uuid_or_404(attachment_id), status=UploadStatus.COMPLETE
    ).first()
    if attachment is None or not attachment.storage_key:
        raise NotFound(_("No such upload."))
    audit.record(
        actor=principal.actor,
        action="consult.attachment.read",
        object_type="consult_attachment",
        object_id=attachment.external_id,
        patient_id=consult.patient.external_id,
        subject_organisation_id=consult.requesting_organisation_id,
    )
    return attachment, default_storage.open(attachment.storage_key, "rb")
