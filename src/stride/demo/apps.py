from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "stride.demo"
    verbose_name = "Demo and synthetic data"
