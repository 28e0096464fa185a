from django.urls import path

from stride.interop import views

urlpatterns = [
    path("exports/research/", views.research_export, name="research-export"),
]
