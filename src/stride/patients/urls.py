from django.urls import path

from stride.patients import views

urlpatterns = [
    path("patients/", views.patient_list, name="patient-list"),
    path("patients/new/", views.patient_create, name="patient-create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient-detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="patient-edit"),
    path("patients/<int:pk>/delete/", views.patient_delete, name="patient-delete"),
    path("patients/<int:pk>/consent/new/", views.consent_create, name="consent-create"),
    path("consents/<int:pk>/edit/", views.consent_edit, name="consent-edit"),
]
