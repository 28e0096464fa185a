"""Secret keys for addresses that open without a login (patient links, calendar feeds).

Each such address is a random key, kept in its own revocable row, and signed
with the installation's secret under a salt of its own, so an altered or
guessed address fails the signature before any database lookup.
"""

from __future__ import annotations

import secrets

from django.core import signing


def new_key() -> str:
    """A fresh random key (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


class KeySigner:
    """Signs keys into address tokens, and reads them back (None when altered)."""

    def __init__(self, salt: str) -> None:
        self._signer = signing.Signer(salt=salt, sep=".")

    def token(self, key: str) -> str:
        return self._signer.sign(key)

    def key(self, token: str) -> str | None:
        try:
            return self._signer.unsign(token)
        except signing.BadSignature:
            return None
