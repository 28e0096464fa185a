"""Per-user API tokens.

A token is a random secret shown once, when it is made; Stride keeps only its
SHA-256 digest (and a short prefix to tell tokens apart in a list), so a copy
of the database opens nothing. A request presents the secret as
``Authorization: Bearer <secret>``; its digest is looked up, which compares
nothing secret character by character. A token acts as its user, with that
user's roles, and stops working when revoked or when the user is deactivated.

FHIR: none (an access credential, not clinical data).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

#: Every secret starts with this, so a leaked one is easy to recognise in a log or a scan.
SECRET_PREFIX = "stride_"
PREFIX_LENGTH = 12


def digest(secret: str) -> str:
    """The SHA-256 of a secret, as stored (hex)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A fresh secret: the prefix and 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    """One token of one user, named by them (e.g. "EHR interface")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'EHR interface'.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, editable=False, help_text="The secret's first characters, to recognise it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: object, name: str) -> tuple[ApiToken, str]:
        """A new token for ``user`` and its secret (the only time the secret exists outside the client)."""
        secret = new_secret()
        token = cls.objects.create(
            user=user, name=name, key_hash=digest(secret), prefix=secret[:PREFIX_LENGTH]
        )
        return token, secret

    @property
    def active(self) -> bool:
        return self.revoked_at is None
