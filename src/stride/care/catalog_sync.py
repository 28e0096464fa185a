"""Bring the catalog tables in line with the catalog files shipped in the package.

Runs after every ``migrate`` (so a new database, a test database and an
upgraded installation all have the catalog) and on ``stride catalog sync``.
Entries are matched by code: new ones are added, changed ones updated, and
those gone from the files are marked retired — never deleted, because
records point at them. Running it twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import transaction

from stride.core.catalog import Catalog, catalog


def _upsert(
    model: Any, rows: dict[str, dict[str, Any]], version: int, counts: Counter[str]
) -> dict[str, Any]:
    existing = {obj.code: obj for obj in model.objects.all()}
    result = {}
    for code, values in rows.items():
        values = {**values, "catalog_version": version, "retired": False}
        obj = existing.get(code)
        if obj is None:
            obj = model.objects.create(code=code, **values)
            counts["added"] += 1
        elif any(getattr(obj, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(obj, k, v)
            obj.save()
            counts["updated"] += 1
        result[code] = obj
    for code, obj in existing.items():
        if code not in rows and not obj.retired:
            obj.retired = True
            obj.save(update_fields=["retired"])
            counts["retired"] += 1
    return result


@transaction.atomic
def sync_catalog(cat: Catalog | None = None) -> Counter[str]:
    from stride.care import models

    cat = cat or catalog()
    counts: Counter[str] = Counter()
    v = cat.versions
    body_sites = _upsert(
        models.BodySite,
        {b.code: {"name": b.name, "snomed": b.snomed, "lateral": b.lateral} for b in cat.body_sites.values()},
        v["body-sites"],
        counts,
    )
    sites = _upsert(
        models.Site,
        {s.code: {"name": s.name, "body_site": body_sites[s.body_site]} for s in cat.sites.values()},
        v["body-sites"],
        counts,
    )
    condition_types = _upsert(
        models.ConditionType,
        {
            c.code: {
                "name": c.name,
                "snomed": c.snomed,
                "body_site": body_sites[c.body_site],
                "icd10": dict(c.icd10),
                "icd10_by_site": {site: dict(codes) for site, codes in c.icd10_by_site.items()},
                "seventh_character": c.seventh_character,
                "excludes": list(c.excludes),
                "qualifiers": [{"code": q.code, "name": q.name, "icd10": q.icd10} for q in c.qualifiers],
            }
            for c in cat.conditions.values()
        },
        v["conditions"],
        counts,
    )
    for code, condition_type in condition_types.items():
        wanted = {sites[s].pk for s in cat.conditions[code].sites}
        if set(condition_type.sites.values_list("pk", flat=True)) != wanted:
            condition_type.sites.set(wanted)
            counts["updated"] += 1
    _upsert(
        models.ProcedureType,
        {
            p.code: {
                "name": p.name,
                "cpt": p.cpt,
                "code_verified": p.code_verified,
                "category": p.category,
                "injectate_kinds": list(p.injectates),
                "default_guidance": p.guidance,
            }
            for p in cat.procedures.values()
        },
        v["procedures"],
        counts,
    )
    _upsert(
        models.TreatmentKind,
        {t.code: {"name": t.name, "category": t.group} for t in cat.treatments.values()},
        v["treatments"],
        counts,
    )
    _upsert(
        models.Drug,
        {d.code: {"name": d.name, "kind": d.group} for d in cat.drugs.values()},
        v["injectates"],
        counts,
    )
    _upsert(
        models.AdverseEventKind,
        {a.code: {"name": a.name} for a in cat.adverse_events.values()},
        v["procedures"],
        counts,
    )
    return counts


def sync_after_migrate(sender: Any, **kwargs: Any) -> None:
    """post_migrate receiver: sync once the care tables exist on the database just migrated."""
    from django.db import router

    from stride.care.models import ConditionType

    using = kwargs.get("using", "default")
    if not router.allow_migrate_model(using, ConditionType):
        return
    from stride.care.plans import sync_protocols

    with transaction.atomic(using=using):
        sync_catalog()
        sync_protocols()
