"""Where image files live: the ``images`` storage (local disk by default, S3-compatible by setting).

Originals are kept byte for byte as uploaded. Renditions (thumbnails, web sizes,
windowed frames) are derived files under ``derived/`` in the same storage: a cache,
rebuilt whenever one is missing. Nothing here is ever served straight from the
storage; every file goes out through a view that checks who is asking.
"""

from __future__ import annotations

from django.core.files.storage import Storage, storages


def image_storage() -> Storage:
    """The ``images`` storage as configured now (the services always go through this, never a field's
    storage, so a changed setting — S3 instead of disk, a test's folder — takes effect at once)."""
    return storages["images"]
