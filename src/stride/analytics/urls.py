from django.urls import path

from stride.analytics import views

urlpatterns = [
    path("analytics/", views.home, name="analytics"),
    path("analytics/report/", views.report, name="analytics-report"),
    path("analytics/cohorts/new/", views.cohort_edit, name="cohort-create"),
    path("analytics/cohorts/<int:pk>/", views.cohort_edit, name="cohort-edit"),
    path("analytics/cohorts/<int:pk>/delete/", views.cohort_delete, name="cohort-delete"),
    path("patients/<int:pk>/case-report/", views.case_report, name="case-report"),
]
