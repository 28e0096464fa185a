from django.urls import path

from stride.outcomes import patient_views, views

urlpatterns = [
    path("conditions/<int:pk>/follow-up/", views.start_follow_up, name="follow-up-start"),
    path("patients/<int:pk>/links/new/", views.create_link, name="link-create"),
    path("patients/<int:pk>/links/revoke/", views.revoke_links, name="links-revoke"),
    path("follow-ups/<int:pk>/paper/<slug:instrument>/", views.paper_entry, name="paper-entry"),
    path("follow-ups/<int:pk>/resend/", views.resend, name="follow-up-resend"),
    path("worklist/", views.worklist, name="worklist"),
    path("contacts/<int:pk>/outcome/", views.task_outcome, name="task-outcome"),
    path("contacts/<int:pk>/letter/", views.letter, name="letter"),
]

# The patient's own pages: no login, a signed personal token.
patient_urlpatterns = [
    path("q/<str:token>/", patient_views.home, name="patient-home"),
    path(
        "q/<str:token>/<int:follow_up>/<slug:instrument>/",
        patient_views.questionnaire,
        name="patient-questionnaire",
    ),
    path(
        "q/<str:token>/<int:follow_up>/<slug:instrument>/save/",
        patient_views.autosave,
        name="patient-autosave",
    ),
]
