"""The `stride` command works from any directory, on a fresh database."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

STRIDE = shutil.which("stride") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "stride")


def run(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env["STRIDE_HOME"] = str(home)
    return subprocess.run([STRIDE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_stride_sets_up_a_database_and_loads_the_demo_from_another_directory(tmp_path: Path) -> None:
    home = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run("migrate", "-v", "0", home=home, cwd=elsewhere).returncode == 0
    result = run("demo", "--synthetic", "0", "--no-progress", home=home, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "Demo logins" in result.stdout and "clinician" in result.stdout
    assert (home / "stride.sqlite3").exists()
    assert not (elsewhere / "var").exists()
    again = run("demo", "--synthetic", "0", "--no-progress", home=home, cwd=elsewhere)
    assert "nothing (already loaded)" in again.stdout


def test_stride_without_arguments_lists_the_commands(tmp_path: Path) -> None:
    result = run(home=tmp_path, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("demo", "serve", "synth", "catalog", "worker", "score", "wording", "migrate"):
        assert command in result.stdout


def test_every_stride_command_has_help_with_an_example(tmp_path: Path) -> None:
    for command in ("demo", "serve", "synth", "catalog", "worker", "score", "wording", "plan_fhir"):
        result = run(command, "--help", home=tmp_path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Example:" in result.stdout, command


def test_a_bad_setting_stops_the_command_with_a_clear_message(tmp_path: Path) -> None:
    env_home = tmp_path
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "STRIDE_HOME": str(env_home),
        "STRIDE_DEBUG": "maybe",
    }
    result = subprocess.run([STRIDE, "check"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "STRIDE_DEBUG='maybe' is not a boolean" in result.stderr
