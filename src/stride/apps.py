from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class StrideConfig(AppConfig):
    """The project package itself: site-wide templates, static files and commands (`stride serve`)."""

    default = True
    name = "stride"
    verbose_name = "Stride"


class StrideAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with Stride's access rules (see :mod:`stride.admin_site`)."""

    default = False
    default_site = "stride.admin_site.StrideAdminSite"
