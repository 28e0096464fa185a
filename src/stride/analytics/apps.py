from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "stride.analytics"
    verbose_name = "Analytics: cohorts, outcome statistics and reports"
