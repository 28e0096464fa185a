from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "stride.imaging"
    verbose_name = "Imaging: images, measurements and annotations"
