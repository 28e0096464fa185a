"""The pure core stays free of Django, so its rules can be read and tested on their own."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import stride.core


def test_no_module_of_the_pure_core_imports_django() -> None:
    modules = [f"stride.core.{m.name}" for m in pkgutil.iter_modules(stride.core.__path__)]
    assert "stride.core.catalog" in modules
    modules.append("stride.interop.fhir_checks")  # runs in a worker process without the settings
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"the pure core imported {result.stdout.strip()}"
