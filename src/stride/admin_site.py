"""The Django admin, for clinic admins and installation superusers only.

Access follows Stride's own roles instead of Django's model permissions: a
user reaches the admin with ``is_staff`` plus the admin role in a clinic (or
as a superuser), and every patient-data list is scoped to the clinics they
administer, through the same :func:`stride.clinics.access.scope` as the pages.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stride.clinics import access
from stride.clinics.access import Action


class StrideAdminSite(admin.AdminSite):
    site_header = "Stride administration"
    site_title = "Stride admin"
    index_title = "Records and settings"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and access.can(user, Action.ADMINISTER))


class ScopedAdmin(admin.ModelAdmin):
    """Patient data in the admin: only the clinics the user administers."""

    def get_queryset(self, request: HttpRequest) -> Any:
        return access.scope(super().get_queryset(request), request.user, Action.ADMINISTER)

    def _allowed(self, request: HttpRequest) -> bool:
        return access.can(request.user, Action.ADMINISTER)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)


class SuperuserAdmin(admin.ModelAdmin):
    """Installation-wide settings: superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    has_view_permission = has_change_permission = has_delete_permission = (  # type: ignore[assignment]
        lambda self, request, obj=None: request.user.is_superuser
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser


class ReadOnlyAdmin(admin.ModelAdmin):
    """Catalog tables mirror the catalog files: edit the files, not the rows."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.can(request.user, Action.ADMINISTER)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.can(request.user, Action.ADMINISTER)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
