from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from stride import views
from stride.care.plan_views import calendar_feed
from stride.outcomes.urls import patient_urlpatterns

admin.site.site_header = "Stride administration"
admin.site.site_title = "Stride admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("overview/", views.overview, name="overview"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("stride.patients.urls")),
    path("", include("stride.care.urls")),
    path("", include("stride.outcomes.urls")),
    path("", include("stride.imaging.urls")),
    path("", include("stride.interop.urls")),
    path("api/", include("stride.api.urls")),
    path("account/", include("stride.api.account_urls")),
    path("", include("stride.analytics.urls")),
    *patient_urlpatterns,
    path("feeds/calendar/<str:token>", calendar_feed, name="calendar-feed"),
    path("admin/", admin.site.urls),
]
