"""The account page where a user makes and revokes their API tokens.

Any logged-in user may have tokens (a token can do no more than its user's
roles allow). A new token's secret is shown once, on the answer to the POST
that made it, and kept nowhere: not in the session, not in a message cookie.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from stride.api.models import ApiToken
from stride.audit.log import record
from stride.audit.models import AuditEntry

MAX_TOKENS = 20


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the token is for, e.g. 'EHR interface' or 'R scripts'."
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    secret = ""
    if request.method == "POST" and form.is_valid():
        live = ApiToken.objects.filter(user=request.user, revoked_at__isnull=True).count()
        if live >= MAX_TOKENS:
            form.add_error(None, f"You have {live} tokens; revoke one you no longer use first.")
        else:
            with transaction.atomic():
                token, secret = ApiToken.issue(request.user, form.cleaned_data["name"])
                record(AuditEntry.Action.CREATE, token, detail={"name": token.name, "prefix": token.prefix})
            form = TokenForm()
    context = {
        "title": "API tokens",
        "form": form,
        "secret": secret,
        "tokens": ApiToken.objects.filter(user=request.user),
    }
    return render(request, "api/tokens.html", context)


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked_at is None:
        with transaction.atomic():
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            record(AuditEntry.Action.UPDATE, token, detail={"fields": ["revoked_at"], "prefix": token.prefix})
        messages.success(request, f"The token “{token.name}” is revoked: it no longer opens anything.")
    return redirect("api-tokens")
