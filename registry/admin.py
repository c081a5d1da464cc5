"""Django admin for operators: organisations, staff, the outbox and delivery logs.

Patient records are deliberately absent: every patient read goes through the API, which
scopes it and writes the audit trail. The audit trail itself is shown read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import events
from .models import (
    AuditEvent,
    DeliveryStatus,
    DicomApplicationEntity,
    EventDelivery,
    Hl7Facility,
    Membership,
    NotificationDelivery,
    Organisation,
    StaffProfile,
)


class DicomAeInline(admin.TabularInline):
    model = DicomApplicationEntity
    extra = 0


class Hl7FacilityInline(admin.TabularInline):
    model = Hl7Facility
    extra = 0


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "division_code", "parent", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "division_code")
    inlines = [DicomAeInline, Hl7FacilityInline]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fk_name = "user"


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "professional_title", "licence_number")
    search_fields = ("display_name", "user__username", "licence_number")
    list_filter = ("professional_title",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organisation", "role", "is_active")
    list_filter = ("role", "is_active")
    search_fields = ("user__username", "organisation__name")
    autocomplete_fields = ("organisation",)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "actor_username", "actor_role", "action", "outcome")
    list_filter = ("outcome", "action")
    search_fields = ("actor_username", "object_id", "request_id")


@admin.action(description=_("Replay the selected parked deliveries"))
def replay_parked(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    rows = list(queryset.filter(status=DeliveryStatus.PARKED).values_list("id", flat=True))
    for delivery_id in rows:
        events.replay(delivery_id)
    modeladmin.message_user(
        request,
        ngettext("%d delivery queued again.", "%d deliveries queued again.", len(rows)) % len(rows),
        messages.SUCCESS,
    )


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "subscriber", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "subscriber")
    actions = [replay_parked]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Needed for the replay action; the form itself has no editable fields.
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "channel", "address", "status", "attempts", "sent_at")
    list_filter = ("channel", "status")
