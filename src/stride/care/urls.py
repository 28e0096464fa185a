from django.urls import path

from stride.care import views

urlpatterns = [
    path("patients/<int:pk>/conditions/new/", views.condition_create, name="condition-create"),
    path("conditions/<int:pk>/edit/", views.condition_edit, name="condition-edit"),
    path("conditions/<int:pk>/delete/", views.condition_delete, name="condition-delete"),
    path("patients/<int:pk>/history/new/", views.history_create, name="history-create"),
    path("history/<int:pk>/edit/", views.history_edit, name="history-edit"),
    path("history/<int:pk>/delete/", views.history_delete, name="history-delete"),
    path("patients/<int:pk>/procedures/new/", views.procedure_create, name="procedure-create"),
    path("procedures/<int:pk>/edit/", views.procedure_edit, name="procedure-edit"),
    path("procedures/<int:pk>/delete/", views.procedure_delete, name="procedure-delete"),
]
