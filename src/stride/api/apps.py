from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "stride.api"
    verbose_name = "API: the typed JSON API and its tokens"
