from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from stride.admin_site import SuperuserAdmin
from stride.clinics.models import Clinic, Membership, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(User)
class UserAdmin(SuperuserAdmin, DjangoUserAdmin):
    inlines = [MembershipInline]
    list_display = ["username", "first_name", "last_name", "email", "is_active", "is_staff"]


@admin.register(Clinic)
class ClinicAdmin(SuperuserAdmin):
    list_display = ["name", "slug", "time_zone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
