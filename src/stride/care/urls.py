from django.urls import path

from stride.care import fhir_views, plan_views, views

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
    path("conditions/<int:pk>/plan/", plan_views.plan_start, name="plan-start"),
    path("conditions/<int:pk>/ladder/", plan_views.ladder, name="ladder"),
    path("plans/<int:pk>/", plan_views.plan_detail, name="plan-detail"),
    path("plans/<int:pk>/steps/new/", plan_views.step_add, name="step-add"),
    path("plans/<int:pk>/stop/", plan_views.plan_stop, name="plan-stop"),
    path("steps/<int:pk>/reschedule/", plan_views.step_reschedule, name="step-reschedule"),
    path("steps/<int:pk>/skip/", plan_views.step_skip, name="step-skip"),
    path("steps/<int:pk>/done/", plan_views.step_done, name="step-done"),
    path("plan-worklist/", plan_views.plan_worklist, name="plan-worklist"),
    path("plans/<int:pk>/calendar.ics", plan_views.plan_calendar, name="plan-calendar"),
    path("calendar/", plan_views.my_calendar, name="my-calendar"),
    path("protocols/<slug:code>/fhir/", fhir_views.protocol_fhir, name="protocol-fhir"),
    path("plans/<int:pk>/fhir/", fhir_views.plan_fhir, name="plan-fhir"),
]
