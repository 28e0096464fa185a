"""``/account/``: the user's own settings (their API tokens)."""

from django.urls import path

from stride.api import views

urlpatterns = [
    path("tokens/", views.tokens, name="api-tokens"),
    path("tokens/<int:pk>/revoke", views.revoke, name="api-token-revoke"),
]
