"""Admin for HL7 partners and the inbound message log (read-only, with replay)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from registry import audit
from registry.errors import DomainError

from . import outbound, services
from .models import (
    Hl7Partner,
    InboundAppointment,
    InboundMessage,
    InboundMessageEvent,
    InboundOrder,
    OutboundMessage,
    PacsPull,
    PacsReportSend,
    RemotePacs,
)


@admin.register(Hl7Partner)
class Hl7PartnerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organisation",
        "sending_application",
        "sending_facility",
        "inbound_enabled",
        "outbound_enabled",
    )
    list_filter = ("inbound_enabled", "outbound_enabled")
    search_fields = ("name", "sending_application", "sending_facility")
    autocomplete_fields = ("organisation",)
    raw_id_fields = ("order_requester",)


class _MappingAdmin(admin.ModelAdmin):
    """Order and appointment mappings are written by the worker only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(InboundOrder)
class InboundOrderAdmin(_MappingAdmin):
    list_display = ("placer_order_number", "partner", "service_text", "created_at")
    list_filter = ("partner",)
    search_fields = ("placer_order_number", "=consult__external_id")


@admin.register(InboundAppointment)
class InboundAppointmentAdmin(_MappingAdmin):
    list_display = ("filler_appointment_id", "partner", "created_at", "updated_at")
    list_filter = ("partner",)
    search_fields = ("filler_appointment_id", "=booking__external_id")


class InboundMessageEventInline(admin.TabularInline):
    model = InboundMessageEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "detail", "actor")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _text(value: bytes | memoryview | None, codec: str) -> str:
    if value is None:
        return ""
    return bytes(value).decode(codec or "ascii", errors="replace").replace("\r", "\n")


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = (
        "received_at",
        "control_id",
        "message_type",
        "trigger_event",
        "sending_application",
        "sending_facility",
        "status",
        "attempts",
    )
    list_filter = ("status", "message_type", "trigger_event", "partner")
    search_fields = ("control_id", "patient_key", "=external_id")
    date_hierarchy = "received_at"
    ordering = ("-id",)
    inlines = [InboundMessageEventInline]
    actions = ["replay"]
    exclude = ("raw", "ack", "application_ack", "text")
    readonly_fields = (
        "external_id",
        "partner",
        "sending_application",
        "sending_facility",
        "receiving_application",
        "receiving_facility",
        "control_id",
        "message_type",
        "trigger_event",
        "message_structure",
        "version",
        "processing_id",
        "charset",
        "codec",
        "size",
        "sha256",
        "peer",
        "received_at",
        "accept_ack_type",
        "application_ack_type",
        "ack_code",
        "patient_key",
        "status",
        "attempts",
        "next_attempt_at",
        "error",
        "patient",
        "processed_at",
        "message_text",
        "ack_text",
        "application_ack_text",
    )

    @admin.display(description=_("message"))
    def message_text(self, obj: InboundMessage) -> str:
        return format_html("<pre>{}</pre>", obj.text.replace("\r", "\n"))

    @admin.display(description=_("acknowledgement sent"))
    def ack_text(self, obj: InboundMessage) -> str:
        return format_html("<pre>{}</pre>", _text(obj.ack, obj.codec))

    @admin.display(description=_("application acknowledgement"))
    def application_ack_text(self, obj: InboundMessage) -> str:
        return format_html("<pre>{}</pre>", _text(obj.application_ack, obj.codec))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ehr_bridge.change_inboundmessage")

    @admin.action(description=_("Replay the selected messages"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[InboundMessage]) -> None:
        actor = audit.Actor(user_id=request.user.pk, username=request.user.get_username())
        done = 0
        for message in queryset.order_by("id"):
            try:
                services.inbound_replay(message_id=message.id, actor=actor, user=request.user)
            except DomainError as exc:
                self.message_user(request, f"{message.control_id}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("%(count)d message queued.", "%(count)d messages queued.", done)
                % {"count": done},
                messages.SUCCESS,
            )


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "control_id",
        "event_type",
        "partner",
        "patient_key",
        "status",
        "attempts",
        "next_attempt_at",
    )
    list_filter = ("status", "event_type", "partner")
    search_fields = ("control_id", "patient_key", "=external_id")
    ordering = ("-id",)
    actions = ["replay"]
    exclude = ("payload", "ack")
    readonly_fields = (
        "external_id",
        "partner",
        "event_type",
        "patient_key",
        "codec",
        "control_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "ack_code",
        "created_at",
        "sent_at",
        "acked_at",
        "payload_text",
        "ack_text",
    )

    @admin.display(description=_("message"))
    def payload_text(self, obj: OutboundMessage) -> str:
        return format_html("<pre>{}</pre>", _text(obj.payload, obj.codec))

    @admin.display(description=_("acknowledgement received"))
    def ack_text(self, obj: OutboundMessage) -> str:
        return format_html("<pre>{}</pre>", _text(obj.ack, "latin-1"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ehr_bridge.change_outboundmessage")

    @admin.action(description=_("Replay the selected dead messages"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[OutboundMessage]) -> None:
        actor = audit.Actor(user_id=request.user.pk, username=request.user.get_username())
        for message in queryset.order_by("id"):
            try:
                outbound.outbound_replay(message_id=message.id, actor=actor)
            except DomainError as exc:
                self.message_user(request, f"{message.control_id}: {exc.message}", messages.ERROR)


@admin.register(RemotePacs)
class RemotePacsAdmin(admin.ModelAdmin):
    """Remote PACS endpoints: configured by system administrators."""

    list_display = (
        "name",
        "organisation",
        "ae_title",
        "host",
        "port",
        "retrieve",
        "report_format",
        "enabled",
    )
    list_filter = ("enabled", "retrieve", "report_format")
    search_fields = ("name", "ae_title", "host")
    autocomplete_fields = ("organisation",)


class _PacsJobAdmin(admin.ModelAdmin):
    """Pulls and report sends are written by the worker only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PacsPull)
class PacsPullAdmin(_PacsJobAdmin):
    list_display = ("study_instance_uid", "pacs", "status", "stored", "failed", "created_at")
    list_filter = ("status", "pacs")
    search_fields = ("study_instance_uid", "=consult__external_id")


@admin.register(PacsReportSend)
class PacsReportSendAdmin(_PacsJobAdmin):
    list_display = ("report", "pacs", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "pacs")
