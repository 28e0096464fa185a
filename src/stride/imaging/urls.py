from django.urls import path

from stride.imaging import views

urlpatterns = [
    path("patients/<int:pk>/images/new/", views.image_upload, name="image-upload"),
    path("patients/<int:pk>/images/compare/", views.compare, name="image-compare"),
    path("patients/<int:pk>/images/compare/figure", views.compare_figure, name="image-compare-figure"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
    path("images/<int:pk>/edit/", views.image_edit, name="image-edit"),
    path("images/<int:pk>/delete/", views.image_delete, name="image-delete"),
    path("images/<int:pk>/render.png", views.image_render, name="image-render"),
    path("images/<int:pk>/original", views.image_original, name="image-original"),
    path("images/<int:pk>/deidentified", views.image_deidentified, name="image-deidentified"),
    path("images/<int:pk>/measurements/", views.image_measure, name="image-measure"),
    path("images/<int:pk>/annotations/", views.image_annotate, name="image-annotate"),
    path("images/<int:pk>/calibrate", views.image_calibrate, name="image-calibrate"),
    path("images/<int:pk>/settings", views.image_settings, name="image-settings"),
    path("measurements/<int:pk>/delete", views.measurement_delete, name="measurement-delete"),
    path("annotations/<int:pk>/delete", views.annotation_delete, name="annotation-delete"),
]
