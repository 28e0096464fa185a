"""The cast every test shares.

Clinic A (Lakeside) and clinic B (Harbour). In A: Alice the clinician, Carol
the coordinator, Rita the researcher and Adam the clinic admin. In B: Olga,
a clinician who must never see A's patients. Patients: Pat in clinic A and
Quinn in clinic B, each with a condition and a procedure.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


def pytest_report_header(config: pytest.Config) -> list[str]:
    import sqlite3

    db = settings.DATABASES["default"]
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    line = f"database: {engine}"
    if engine == "sqlite3":
        line += f" (SQLite {sqlite3.sqlite_version})"
    else:
        line += f" ({db.get('HOST')}:{db.get('PORT')})"
    return [line]


@pytest.fixture(autouse=True)
def _fast_and_quiet(settings: object, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # type: ignore[attr-defined]
    # Each test files its images in a folder of its own.
    settings.STORAGES = {  # type: ignore[attr-defined]
        **settings.STORAGES,  # type: ignore[attr-defined]
        "images": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path_factory.mktemp("images")},
        },
    }


@dataclass
class Cast:
    clinic_a: object
    clinic_b: object
    alice: object
    carol: object
    rita: object
    adam: object
    olga: object
    pat: object
    quinn: object
    pat_condition: object
    quinn_condition: object
    pat_procedure: object
    quinn_procedure: object


PASSWORD = "correct horse battery"


def make_user(username: str, clinic: object, role: str, **extra: object) -> object:
    from stride.clinics.models import Membership, User

    user = User.objects.create_user(
        username=username, password=PASSWORD, first_name=username.title(), **extra
    )
    Membership.objects.create(user=user, clinic=clinic, role=role)
    return user


def make_patient(clinic: object, record_number: str, **extra: object) -> object:
    from stride.patients.models import Consent, Patient

    values = {
        "given_name": "Pat",
        "family_name": "Lee",
        "date_of_birth": dt.date(1970, 5, 17),
        "sex": "female",
        "height_cm": Decimal("168.0"),
        "weight_kg": Decimal("70.0"),
    } | extra
    patient = Patient.objects.create(clinic=clinic, record_number=record_number, **values)
    Consent.objects.create(patient=patient, version="1", consented_on=dt.date(2025, 1, 10))
    return patient


def make_condition(
    patient: object, code: str = "morton-neuroma", laterality: str = "left", site: str = "im-space-3"
) -> object:
    from stride.care.models import Condition, ConditionType, Site

    condition = Condition(
        patient=patient,
        condition_type=ConditionType.objects.get(code=code),
        laterality=laterality,
        site=Site.objects.get(code=site) if site else None,
        onset_date=dt.date(2024, 3, 1),
    )
    condition.full_clean()
    condition.save()
    return condition


def make_procedure(condition: object, clinician: object, on: dt.date = dt.date(2025, 2, 1)) -> object:
    from stride.care.models import Injectate, Procedure, ProcedureType

    procedure = Procedure.objects.create(
        patient=condition.patient,  # type: ignore[attr-defined]
        condition=condition,
        performed_on=on,
        clinician=clinician,
        procedure_type=ProcedureType.objects.get(code="perineural-platelet-lysate"),
        laterality=condition.laterality,  # type: ignore[attr-defined]
        image_guidance="ultrasound",
    )
    Injectate.objects.create(procedure=procedure, kind="platelet-lysate", volume_ml=Decimal("2"))
    return procedure


@pytest.fixture
def cast(db: None) -> Cast:
    from stride.clinics.models import Clinic

    clinic_a = Clinic.objects.create(name="Lakeside", slug="lakeside", time_zone="America/Los_Angeles")
    clinic_b = Clinic.objects.create(name="Harbour", slug="harbour", time_zone="Europe/London")
    alice = make_user("alice", clinic_a, "clinician")
    carol = make_user("carol", clinic_a, "coordinator")
    rita = make_user("rita", clinic_a, "researcher")
    adam = make_user("adam", clinic_a, "admin", is_staff=True)
    olga = make_user("olga", clinic_b, "clinician")
    pat = make_patient(clinic_a, "A-001")
    quinn = make_patient(clinic_b, "B-001", given_name="Quinn", family_name="Moss")
    pat_condition = make_condition(pat)
    quinn_condition = make_condition(quinn, laterality="right")
    return Cast(
        clinic_a=clinic_a,
        clinic_b=clinic_b,
        alice=alice,
        carol=carol,
        rita=rita,
        adam=adam,
        olga=olga,
        pat=pat,
        quinn=quinn,
        pat_condition=pat_condition,
        quinn_condition=quinn_condition,
        pat_procedure=make_procedure(pat_condition, alice),
        quinn_procedure=make_procedure(quinn_condition, olga),
    )


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's browser tests (see tests/browser.py)."""
    from tests.browser import chromium

    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
