"""Settings come from the environment, typed, and stop loudly on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from stride import conf


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("0", False), ("YES", True), ("off", False), ("", False)]
)
def test_booleans_are_read_in_the_usual_spellings(monkeypatch, raw, value) -> None:
    monkeypatch.setenv("STRIDE_X", raw)
    assert conf.envbool("STRIDE_X", not value) is value


def test_a_misspelt_boolean_stops_with_the_variable_named(monkeypatch) -> None:
    monkeypatch.setenv("STRIDE_DEBUG", "ture")
    with pytest.raises(ImproperlyConfigured, match="STRIDE_DEBUG='ture' is not a boolean"):
        conf.envbool("STRIDE_DEBUG", False)


def test_whole_numbers_and_their_minimum_are_checked(monkeypatch) -> None:
    monkeypatch.setenv("STRIDE_N", "five")
    with pytest.raises(ImproperlyConfigured, match="not a whole number"):
        conf.envint("STRIDE_N", 5)
    monkeypatch.setenv("STRIDE_N", "0")
    with pytest.raises(ImproperlyConfigured, match="below its minimum of 1"):
        conf.envint("STRIDE_N", 5, minimum=1)


def test_time_zones_must_exist(monkeypatch) -> None:
    monkeypatch.setenv("STRIDE_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(ImproperlyConfigured, match="not an IANA time zone"):
        conf.envtimezone("STRIDE_TIME_ZONE", "UTC")


def test_a_secret_may_come_from_a_file_but_not_from_both(monkeypatch, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("STRIDE_SECRET_KEY_FILE", str(secret))
    assert conf.envsecret("STRIDE_SECRET_KEY") == "s3cret"
    monkeypatch.setenv("STRIDE_SECRET_KEY", "other")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        conf.envsecret("STRIDE_SECRET_KEY")


def test_a_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    first = conf.persistent_secret(path)
    assert conf.persistent_secret(path) == first
    assert len(first) > 40
    assert path.stat().st_mode & 0o777 == 0o600


def _settings_in_subprocess(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("STRIDE_", "DATABASE_URL"))}
    environment |= {"STRIDE_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "stride.settings", **env}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "db = settings.DATABASES['default']; print(db['ENGINE'], db['NAME'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=tmp_path
    )


def test_the_default_database_is_a_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    result = _settings_in_subprocess(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", str(tmp_path / "stride.sqlite3")]
    assert (tmp_path / "secret_key").exists()


def test_database_url_selects_postgresql(tmp_path: Path) -> None:
    result = _settings_in_subprocess(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/stride")
    assert result.stdout.split() == ["django.db.backends.postgresql", "stride"]


def test_an_unsupported_database_is_refused(tmp_path: Path) -> None:
    result = _settings_in_subprocess(tmp_path, DATABASE_URL="mysql://root@localhost/stride")
    assert result.returncode != 0
    assert "must point to SQLite or PostgreSQL" in result.stderr
