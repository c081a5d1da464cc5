"""Django admin for operators: schedules and their sessions, exceptions and the holiday
table. Bookings are deliberately absent: they carry patient data and go through the API."""

from __future__ import annotations

from django.contrib import admin

from .models import HolidayOverride, Schedule, ScheduleException, WeeklyTemplate


class WeeklyTemplateInline(admin.TabularInline):
    model = WeeklyTemplate
    extra = 0


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "department", "approval_required", "is_active")
    list_filter = ("is_active", "approval_required")
    search_fields = ("name", "department", "organisation__name")
    inlines = [WeeklyTemplateInline]


@admin.register(ScheduleException)
class ScheduleExceptionAdmin(admin.ModelAdmin):
    list_display = ("organisation", "schedule", "kind", "starts_at", "ends_at", "reason")
    list_filter = ("kind",)


@admin.register(HolidayOverride)
class HolidayOverrideAdmin(admin.ModelAdmin):
    """Corrections to the packaged statutory calendar; they win over it. Run
    ``manage.py generate_slots`` (or wait for the daily run) after a change."""

    list_display = ("date", "is_workday", "name", "works_as_weekday")
    ordering = ("-date",)
