"""Benchmark the FHIR bulk export and import against raw baselines measured in the same run.

    .venv/bin/python bench/interop.py [--patients 10000] [--database sqlite|postgres|both] [--seed S]
                                      [--reuse] [--no-check] [--home DIR] [--postgres-url URL]

For each database (SQLite; PostgreSQL on the server of --postgres-url when it answers) it builds a
synthetic registry of --patients patients with ``stride migrate`` and ``stride synth`` (not
counted; kept in --home, on PostgreSQL in the database ``stride_bench_interop_src_<N>``, and reused
with --reuse, as are the export's files and figures when that run measured them), then times, each in a
fresh Python process:

(a) the export: ``stride.interop.fhir_export.write_bulk`` of every patient, NDJSON files and manifest,
    every resource built and checked by the fhir.resources models; and its baseline, a raw read of the
    same tables (``values_list`` in chunks) written as plain JSON lines, no mapping and no checks;
(b) the import of those files into an empty registry (``..._dst_<N>``):
    ``stride.interop.fhir_import.import_paths``, every resource validated, mapped and written through
    the models' rules (``full_clean``, the scoring of every answer set, the audit), in a savepoint
    each (new completed responses: a run of them together), checked against the FHIR models in a
    worker process when there are two cores; and its baseline, ``bulk_create`` of as many plain rows (one
    ``ExternalResource`` per resource, in batches of 1,000, one transaction), deleted again after;
(c) unless --no-check, the export again from the imported registry, which must give the same files,
    byte for byte (the round trip; a difference fails the run).

It prints resources (or rows) per second for each part, the ratios to the baselines and the peak
resident memory of each process, and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "stride_bench_interop"
BASELINE_BATCH = 1000


# --------------------------------------------------------------------------- the child process


def _peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stride.settings")
    django.setup()


def measure_export(out: Path, baseline: bool) -> dict[str, Any]:
    _setup()
    from stride.audit.context import acting_as, cli_actor
    from stride.interop.fhir_export import write_bulk

    with acting_as(cli_actor()):
        started = time.perf_counter()
        counts = write_bulk(out, clinic_ids=None)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {"seconds": seconds, "counts": counts, "peak_mb": _peak_mb()}
    if baseline:
        result["baseline_seconds"], result["baseline_rows"] = _raw_read(out.parent / f"{out.name}-raw")
    return result


def _raw_read(out: Path) -> tuple[float, int]:
    """The same tables read in chunks and written as plain JSON lines: no mapping, no checks."""
    from stride.care.models import Condition, Injectate, Procedure
    from stride.clinics.models import Clinic
    from stride.outcomes.models import QuestionnaireResponse, Score
    from stride.patients.models import Consent, Patient

    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    started = time.perf_counter()
    for model in (Clinic, Patient, Consent, Condition, Procedure, Injectate, QuestionnaireResponse, Score):
        with (out / f"{model.__name__}.jsonl").open("w") as handle:
            for row in model.objects.order_by("pk").values().iterator(chunk_size=2000):
                handle.write(json.dumps(row, default=str))
                handle.write("\n")
                rows += 1
    return time.perf_counter() - started, rows


def measure_import(source: Path, baseline: bool) -> dict[str, Any]:
    _setup()
    from stride.audit.context import acting_as, cli_actor
    from stride.interop.fhir_import import import_paths

    with acting_as(cli_actor()):
        started = time.perf_counter()
        report = import_paths([source])
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds,
        "counts": {t: dict(c) for t, c in report.counts.items()},
        "rejected": [str(r) for r in report.rejected[:20]],
        "rejected_total": report.total("rejected"),
        "peak_mb": _peak_mb(),
    }
    if baseline:
        result["baseline_rows"] = sum(sum(c.values()) for c in report.counts.values())
        result["baseline_seconds"] = _bulk_insert(result["baseline_rows"])
    return result


def _bulk_insert(n: int) -> float:
    """``bulk_create`` of ``n`` plain rows in one transaction, timed, then removed again."""
    from django.db import transaction

    from stride.interop.models import ExternalResource

    def rows(start: int, stop: int) -> Iterator[ExternalResource]:
        for i in range(start, stop):
            yield ExternalResource(
                source="bench-baseline",
                resource_type="Observation",
                fhir_id=f"baseline-{i}",
                status=ExternalResource.Status.KEPT,
                content_hash=f"{i:064x}",
                reason="baseline row",
            )

    started = time.perf_counter()
    with transaction.atomic():
        for start in range(0, n, BASELINE_BATCH):
            ExternalResource.objects.bulk_create(rows(start, min(n, start + BASELINE_BATCH)))
    seconds = time.perf_counter() - started
    ExternalResource.objects.filter(source="bench-baseline").delete()
    return seconds


# --------------------------------------------------------------------------- registries


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{(result.stderr or result.stdout).strip()[-3000:]}")
    return result.stdout


def _stride(args: list[str], env: dict[str, str]) -> str:
    return _run([sys.executable, "-m", "stride", *args], env, f"stride {' '.join(args)}")


def _database_url(server_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def _admin(server_url: str) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
        yield admin


def postgres_reachable(url: str) -> str | None:
    try:
        with _admin(url) as db:
            return db.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"  PostgreSQL at {url} is not reachable ({reason}): PostgreSQL skipped")
        return None


def _environment(database: str, home: Path, name: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "STRIDE_DEBUG"}}
    env |= {
        "STRIDE_HOME": str(home),
        "DJANGO_SETTINGS_MODULE": "stride.settings",
        "STRIDE_LOG_LEVEL": "WARNING",
    }
    # Both registries of a run are one installation: the same key, so ids are derived alike.
    env["STRIDE_SECRET_KEY"] = "stride interop benchmark: one installation, two databases"
    if database == "postgres":
        env["DATABASE_URL"] = _database_url(args.postgres_url, name)
    return env


def _fresh(database: str, home: Path, name: str, args: argparse.Namespace) -> dict[str, str]:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if database == "postgres":
        with _admin(args.postgres_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    env = _environment(database, home, name, args)
    _stride(["migrate", "--no-input", "-v", "0"], env)
    return env


def _analyze(env: dict[str, str]) -> None:
    if "DATABASE_URL" in env:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
            db.execute("ANALYZE")


def source_registry(database: str, args: argparse.Namespace) -> tuple[dict[str, str], float | None]:
    home = Path(args.home) / f"{database}-source-{args.patients}"
    name = f"{DATABASE_PREFIX}_src_{args.patients}"
    marker = home / "built.json"
    wanted = {"patients": args.patients, "seed": args.seed, "database": database}
    if args.reuse and marker.exists() and json.loads(marker.read_text()) == wanted:
        return _environment(database, home, name, args), None
    started = time.perf_counter()
    env = _fresh(database, home, name, args)
    _stride(["synth", "--patients", str(args.patients), "--seed", str(args.seed), "--no-progress"], env)
    _analyze(env)
    marker.write_text(json.dumps(wanted))
    return env, time.perf_counter() - started


def _child(mode: str, path: Path, env: dict[str, str], what: str, baseline: bool = True) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--path", str(path)]
    command += [] if baseline else ["--no-baseline"]
    return json.loads(_run(command, env, what).strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:>10,.0f}" if seconds > 0 else f"{'-':>10}"


def run(database: str, label: str, args: argparse.Namespace) -> dict[str, Any]:
    source_env, built = source_registry(database, args)
    note = f"built in {built:.0f} s" if built is not None else "reused"
    print(f"  {label}: registry of {args.patients:,} patients {note} (not counted)", flush=True)
    work = Path(args.home) / f"{database}-files-{args.patients}"
    measured = work / "export.json"
    if args.reuse and built is None and measured.exists() and (work / "export" / "manifest.json").exists():
        exported = json.loads(measured.read_text())
        print(f"  {label}: (a) export reused: files and figures of the run at {exported['at']}", flush=True)
        shutil.rmtree(work / "again", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"  {label}: (a) exporting ...", flush=True)
        exported = _child("export", work / "export", source_env, f"{label} export")
        exported["at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        measured.write_text(json.dumps(exported))
    resources = sum(exported["counts"].values())
    print(f"  {label}: (b) importing {resources:,} resources into an empty registry ...", flush=True)
    target_name = f"{DATABASE_PREFIX}_dst_{args.patients}"
    target_env = _fresh(database, Path(args.home) / f"{database}-target-{args.patients}", target_name, args)
    imported = _child("import", work / "export", target_env, f"{label} import")
    _analyze(target_env)
    problems = []
    if imported["rejected_total"]:
        problems.append(f"{imported['rejected_total']:,} resources rejected, e.g. {imported['rejected'][:3]}")
    again = None
    if not args.no_check:
        print(f"  {label}: (c) exporting the imported registry again ...", flush=True)
        again = _child("export", work / "again", target_env, f"{label} export again", baseline=False)
        names = sorted(p.name for p in (work / "export").glob("*.ndjson"))
        if names != sorted(p.name for p in (work / "again").glob("*.ndjson")):
            problems.append("the second export has other files")
        else:
            _, mismatch, errors = filecmp.cmpfiles(work / "export", work / "again", names, shallow=False)
            if mismatch or errors:
                problems.append(f"the second export differs in {', '.join(mismatch + errors)}")
    return {
        "database": label,
        "resources": resources,
        "exported": exported,
        "imported": imported,
        "again": again,
        "problems": problems,
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(f"  {args.patients:,} synthetic patients (seed {args.seed}); resources (rows) per second")
    head = (
        f"  {'database':<11}{'resources':>10}  {'export':>10}{'raw read':>10}{'ratio':>7}  "
        f"{'import':>10}{'bulk ins.':>10}{'ratio':>7}  {'peak MB exp/imp':>16}"
    )
    print(head)
    for r in results:
        e, i, n = r["exported"], r["imported"], r["resources"]
        export_rate = n / e["seconds"]
        read_rate = e["baseline_rows"] / e["baseline_seconds"]
        import_rate = n / i["seconds"]
        insert_rate = i["baseline_rows"] / i["baseline_seconds"]
        print(
            f"  {r['database']:<11}{n:>10,}  {_rate(n, e['seconds'])}"
            f"{_rate(e['baseline_rows'], e['baseline_seconds'])}"
            f"{read_rate / export_rate:>6.1f}x  {_rate(n, i['seconds'])}"
            f"{_rate(i['baseline_rows'], i['baseline_seconds'])}{insert_rate / import_rate:>6.0f}x  "
            f"{e['peak_mb']:>7.0f} /{i['peak_mb']:>6.0f}"
        )
        print(
            f"  {'':<11}{'seconds:':>10}  {e['seconds']:>10.1f}{e['baseline_seconds']:>10.1f}{'':>7}  "
            f"{i['seconds']:>10.1f}{i['baseline_seconds']:>10.1f}"
        )
        if r["again"] is not None and not r["problems"]:
            print(f"  {'':<11}round trip: the export of the imported registry is the same, byte for byte")
    print(
        "\n  ratio = how many times faster the baseline is. Export: every resource built and checked by the\n"
        "  fhir.resources models vs plain rows dumped as JSON. Import: every resource validated, mapped,\n"
        "  written through the models' rules and audited, all or nothing, vs bulk_create of plain rows."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", "-n", type=int, default=10_000, help="registry size (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--database", choices=["sqlite", "postgres", "both"], default="both", help="default: both"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the source registry of a previous run, and its export (files and figures) if it has one",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the second export (the round trip)")
    parser.add_argument(
        "--home",
        default=str(Path(tempfile.gettempdir()) / "stride-bench-interop"),
        help="where registries and files are kept (default %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("STRIDE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the server to build the databases on (default $STRIDE_BENCH_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument("--child", choices=["export", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "export":
        print(json.dumps(measure_export(args.path, not args.no_baseline)))
        return 0
    if args.child == "import":
        print(json.dumps(measure_import(args.path, not args.no_baseline)))
        return 0
    if args.patients < 1:
        parser.error("--patients must be at least 1")

    databases: list[tuple[str, str]] = []
    versions = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPU(s)"]
    if args.database in ("sqlite", "both"):
        databases.append(("sqlite", "SQLite"))
        versions.append(f"SQLite {sqlite3.sqlite_version}")
    if args.database in ("postgres", "both"):
        version = postgres_reachable(args.postgres_url)
        if version is not None:
            databases.append(("postgres", "PostgreSQL"))
            versions.append(f"PostgreSQL {version}")
        elif args.database == "postgres":
            return 2
    print(f"stride FHIR bulk export and import benchmark: {args.patients:,} patients, seed {args.seed}")
    print(f"  {', '.join(versions)}; work in {args.home}")
    results = [run(database, label, args) for database, label in databases]
    report(results, args)
    failed = [f"{r['database']}: {p}" for r in results for p in r["problems"]]
    for problem in failed:
        print(f"  CHECK FAILED {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
