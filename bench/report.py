"""Benchmark the cohort report on SQLite and PostgreSQL against a hand-written SQL baseline, in the same run.

    .venv/bin/python bench/report.py [--patients 10000 100000] [--only sqlite|postgres] [--reuse]
                                     [--repeat R] [--pdf]

For each database and size it needs a synthetic registry: ``stride migrate``
and ``stride synth --patients N --seed S`` into a folder of --home (default
``$TMPDIR/stride-bench-report``); on PostgreSQL into the database
``stride_bench_report_<N>`` on the server of --postgres-url, followed by
``ANALYZE`` (what autovacuum would do before anyone reads a freshly loaded
database). A registry is rebuilt on every run unless --reuse is given and the
previous build had the same N and seed. Building is not counted. Nothing else
on the server is touched.

Then one fresh Python process per database and size, after a warm-up (the
baseline and the rows once each, untimed, so every part reads from the same
warm caches), times, for a cohort of every patient on the pain NRS
(``nprs``, scale ``total``), each part the best of --repeat runs (default 1):

(a) ``stride.analytics.dataset.analysis_rows``: the de-identified rows;
(b) ``stride.core.analysis.analyse`` and ``table_one`` on those rows;
(c) the whole report: ``stride.analytics.reports.cohort_report`` (which reads
    the rows again) and ``render_html`` and ``render_csv`` (``render_pdf``
    too with --pdf); skipped, and said so, when that module cannot be imported;
(d) the baseline: one plain SQL statement through the database cursor that
    computes the report's headline figures per time point: the episodes
    answered and scored, the mean score, the mean change from baseline and
    the responders by the NPRS "mcid" definition (at least 2 points or 30 %
    less pain than at baseline) among those with a baseline.

The baseline's figures must equal those of ``analyse()`` (and of the report):
a difference is printed and fails the run, so the benchmark doubles as an
end-to-end check of the rows and the analysis. It prints a table with the
seconds of each part, the ratio of the report to the baseline and whether the
goal is met (the whole report, (c), for 100,000 patients in under 5 s), and
exits non-zero when a check fails or the report misses the goal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
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

GOAL_SECONDS = 5.0  # the whole cohort report ...
GOAL_PATIENTS = 100_000  # ... for this many patients
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "stride_bench_report"
INSTRUMENT, SCALE, DEFINITION = "nprs", "total", "mcid"
LABEL = "All patients"

# One statement: per time point, over the episodes of every patient whose latest consent stands
# (no later consent, the same order as Patient.objects.analysable()), the figures the report leads
# with. "answer" is the completed, on-time (not flagged late) answer of the instrument at a follow-up,
# with its score (NULL when the scoring rules withheld it). The consent is written as an anti-join:
# as a window function (ROW_NUMBER() = 1) PostgreSQL estimated the cohort at 500 episodes and
# probed indexes a million times (6.3 s instead of 3.5 s).
BASELINE_SQL = """
WITH cohort AS (
    SELECT e.id
    FROM outcomes_episode e
    JOIN care_condition c ON c.id = e.condition_id
    JOIN patients_consent pc ON pc.patient_id = c.patient_id
    WHERE pc.withdrawn_on IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM patients_consent later
          WHERE later.patient_id = pc.patient_id
            AND (later.consented_on > pc.consented_on
                 OR (later.consented_on = pc.consented_on AND later.id > pc.id))
      )
),
answer AS (
    SELECT f.episode_id, f.timepoint, CASE WHEN s.valid THEN s.value END AS value
    FROM cohort
    JOIN outcomes_followup f ON f.episode_id = cohort.id
    JOIN outcomes_questionnaireresponse r ON r.follow_up_id = f.id
    JOIN outcomes_score s ON s.response_id = r.id
    WHERE r.status = 'completed' AND s.instrument = %(instrument)s AND s.scale = %(scale)s
      AND CAST(r.flags AS TEXT) NOT LIKE '%%"late"%%'
)
SELECT f.timepoint,
       SUM(CASE WHEN f.status = 'completed' OR a.episode_id IS NOT NULL THEN 1 ELSE 0 END) AS answered,
       COUNT(a.value) AS scored,
       AVG(a.value) AS mean,
       COUNT(a.value - b.value) AS changed,
       AVG(a.value - b.value) AS mean_change,
       SUM(CASE WHEN b.value - a.value >= %(points)s - 1e-9
                  OR (b.value <> 0 AND (b.value - a.value) * 100.0 / ABS(b.value) >= %(percent)s - 1e-9)
                THEN 1 ELSE 0 END) AS responders
FROM cohort
JOIN outcomes_followup f ON f.episode_id = cohort.id
LEFT JOIN answer a ON a.episode_id = f.episode_id AND a.timepoint = f.timepoint
LEFT JOIN answer b ON b.episode_id = f.episode_id AND b.timepoint = 'baseline'
GROUP BY f.timepoint
"""

FIGURES = ("answered", "scored", "mean", "changed", "mean_change", "responders", "responders_of")


# --------------------------------------------------------------------------- the measuring process


def _figures_of(result: Any) -> dict[str, dict[str, Any]]:
    """The headline figures of an ``analyse()`` result, per time point."""
    figures = {}
    for point in result.points:
        rate = next((line.rate for line in point.responders if line.definition == DEFINITION), None)
        figures[point.timepoint] = {
            "answered": point.flow.answered,
            "scored": point.score.n,
            "mean": point.score.mean,
            "changed": point.change.n if point.change else None,
            "mean_change": point.change.mean if point.change else None,
            "responders": rate.answered.k if rate else None,
            "responders_of": rate.answered.n if rate else None,
        }
    return figures


def _baseline(connection: Any, points: tuple[str, ...], rule: Any) -> dict[str, dict[str, Any]]:
    params = {
        "instrument": INSTRUMENT,
        "scale": SCALE,
        "points": float(rule.points[SCALE]),
        "percent": float(rule.percent),
    }
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, params)
        found = {row[0]: row[1:] for row in cursor.fetchall()}
    figures = {}
    for point in points:
        answered, scored, mean, changed, mean_change, responders = found.get(point, (0, 0, None, 0, None, 0))
        at_baseline = point == "baseline"
        figures[point] = {
            "answered": int(answered),
            "scored": int(scored),
            "mean": None if mean is None else float(mean),
            "changed": None if at_baseline else int(changed),
            "mean_change": None if at_baseline or mean_change is None else float(mean_change),
            "responders": None if at_baseline else int(responders or 0),
            "responders_of": None if at_baseline else int(changed),  # responders among those with both
        }
    return figures


def _differences(expected: dict, found: dict, what: str) -> list[str]:
    problems = []
    for point, figures in expected.items():
        for name in FIGURES:
            a, b = figures[name], found.get(point, {}).get(name)
            if isinstance(a, float) and isinstance(b, float):
                same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = a == b
            if not same:
                problems.append(f"{what} {point} {name}: SQL {a!r}, Stride {b!r}")
    return problems


def measure(pdf: bool, repeat: int) -> dict[str, Any]:
    """Run in the child process (settings from the environment); the timings and checks as a dict."""
    import django

    django.setup()
    from django.db import connection

    from stride.analytics.dataset import analysis_rows
    from stride.core import analysis
    from stride.core import instruments as core_instruments
    from stride.core.cohorts import CohortSpec

    definition = core_instruments.instrument(INSTRUMENT)
    target = definition.scale(SCALE)
    rule = definition.responder.definitions[DEFINITION]
    assert not target.higher_is_better and rule.rule == "change-or-percent", "the SQL assumes NPRS"
    points = analysis.timepoints()
    spec = CohortSpec()
    out: dict[str, Any] = {"vendor": connection.vendor, "problems": []}

    def timed(key: str, work: Any) -> Any:
        """``work()``'s last result; its best time of ``repeat`` runs in ``out[key]``."""
        best, result = math.inf, None
        for _ in range(repeat):
            result = None  # the previous run's result is freed here, not in the next run's time
            started = time.perf_counter()
            result = work()
            best = min(best, time.perf_counter() - started)
        out[key] = best
        return result

    # Warm-up, untimed: the first reader of the tables would otherwise pay for the cold caches.
    _baseline(connection, points, rule)
    analysis_rows(spec, None, INSTRUMENT, SCALE)

    rows = timed("rows_seconds", lambda: analysis_rows(spec, None, INSTRUMENT, SCALE))
    out["rows"] = len(rows)

    def analyse() -> Any:
        analysis.table_one({LABEL: rows})
        return analysis.analyse(LABEL, rows, definition, SCALE)

    result = timed("analysis_seconds", analyse)
    rows.clear()  # the report reads its own

    try:
        from stride.analytics import reports
    except ImportError as error:
        out["report_skipped"] = f"stride.analytics.reports cannot be imported ({error})"
        reports = None
    report_figures = None
    if reports is not None:
        report = timed(
            "report_build_seconds",
            lambda: reports.cohort_report(
                [(LABEL, spec)], clinic_ids=None, instrument=INSTRUMENT, scale=SCALE
            ),
        )
        html, csv = timed(
            "report_render_seconds", lambda: (reports.render_html(report), reports.render_csv(report))
        )
        out["report_bytes"] = {"html": len(html), "csv": len(csv)}
        if pdf:
            try:
                out["report_bytes"]["pdf"] = len(
                    timed("report_pdf_seconds", lambda: reports.render_pdf(report))
                )
            except Exception as error:  # e.g. Pango missing: the PDF is optional here
                out["pdf_skipped"] = f"{type(error).__name__}: {error}"
        out["report_seconds"] = (
            out["report_build_seconds"] + out["report_render_seconds"] + out.get("report_pdf_seconds", 0.0)
        )
        report_figures = _figures_of(report.results[0])

    sql_figures = timed("sql_seconds", lambda: _baseline(connection, points, rule))

    out["figures"] = sql_figures
    out["problems"] += _differences(sql_figures, _figures_of(result), "analyse()")
    if report_figures is not None:
        out["problems"] += _differences(sql_figures, report_figures, "report")
    return out


# --------------------------------------------------------------------------- building the registries


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
    """The server's version, or None (and why, printed) when it cannot be reached."""
    try:
        with _admin(url) as db:
            return db.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"  PostgreSQL at {url} is not reachable ({reason}): PostgreSQL skipped")
        return None


def registry(database: str, n: int, args: argparse.Namespace) -> tuple[dict[str, str], float | None]:
    """The environment of a built registry of ``n`` patients, and the seconds building took (None: reused)."""
    home = Path(args.home) / f"{database}-{n}"
    marker = home / "built.json"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "STRIDE_DEBUG"}}
    env |= {
        "STRIDE_HOME": str(home),
        "DJANGO_SETTINGS_MODULE": "stride.settings",
        "STRIDE_LOG_LEVEL": "WARNING",
    }
    name = f"{DATABASE_PREFIX}_{n}"
    if database == "postgres":
        env["DATABASE_URL"] = _database_url(args.postgres_url, name)
    wanted = {"patients": n, "seed": args.seed, "database": database}

    if args.reuse and marker.exists():
        built = json.loads(marker.read_text())
        present = True
        if database == "postgres":
            with _admin(args.postgres_url) as admin:
                present = bool(
                    admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
                )
        if present and {k: built.get(k) for k in wanted} == wanted:
            return env, None

    started = time.perf_counter()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if database == "postgres":
        with _admin(args.postgres_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    _stride(["migrate", "--no-input", "-v", "0"], env)
    _stride(["synth", "--patients", str(n), "--seed", str(args.seed), "--no-progress"], env)
    if database == "postgres":
        import psycopg

        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
            db.execute("ANALYZE")
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({**wanted, "built_on": time.strftime("%Y-%m-%d"), "seconds": seconds}))
    return env, seconds


# --------------------------------------------------------------------------- the table


def _seconds(value: float | None) -> str:
    return f"{value:8.2f}" if value is not None else f"{'skipped':>8}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--patients",
        "-n",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="registry sizes (default 10000 100000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="measure one database only")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the registries a previous run built with the same N and seed",
    )
    parser.add_argument("--pdf", action="store_true", help="render the PDF too (part of the report's time)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="time each part this many times, keep the best (default 1)"
    )
    parser.add_argument(
        "--home",
        default=str(Path(tempfile.gettempdir()) / "stride-bench-report"),
        help="where the registries are built and kept (default %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("STRIDE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the server to build the databases on (default $STRIDE_BENCH_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.pdf, args.repeat)))
        return 0
    if any(n < 1 for n in args.patients) or args.repeat < 1:
        parser.error("--patients and --repeat must be at least 1")

    databases: list[tuple[str, str]] = []
    versions = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPU(s)"]
    if args.only in (None, "sqlite"):
        databases.append(("sqlite", "SQLite"))
        versions.append(f"SQLite {sqlite3.sqlite_version}")
    if args.only in (None, "postgres"):
        version = postgres_reachable(args.postgres_url)
        if version is not None:
            databases.append(("postgres", "PostgreSQL"))
            versions.append(f"PostgreSQL {version}")
        elif args.only == "postgres":
            return 2
    print(
        f"stride cohort report benchmark: {', '.join(f'{n:,}' for n in args.patients)} patients, seed "
        f"{args.seed}; a cohort of every patient on {INSTRUMENT} {SCALE}"
    )
    print(f"  {', '.join(versions)}; registries in {args.home}")

    results = []
    for n in args.patients:
        for database, name in databases:
            env, built = registry(database, n, args)
            note = f"built in {built:.0f} s" if built is not None else "reused"
            print(f"  {name} {n:,} patients: registry {note} (not counted); measuring ...", flush=True)
            command = [sys.executable, __file__, "--measure", "--repeat", str(args.repeat)]
            command += ["--pdf"] if args.pdf else []
            out = json.loads(_run(command, env, f"measuring {name} {n:,}").strip().splitlines()[-1])
            results.append((n, name, out))

    best = f", the best of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"\n  seconds{best}; (a) rows, (b) analyse + table_one, (c) the report, (d) the SQL baseline")
    print(
        f"  {'patients':>9} {'database':<10} {'rows':>8} {'(a) rows':>8} {'(b) anal.':>9} "
        f"{'(c) report':>10} {'(d) SQL':>8} {'(c)/(d)':>8}  goal: report < {GOAL_SECONDS:.0f} s at "
        f"{GOAL_PATIENTS:,}"
    )
    ok = True
    for n, name, out in results:
        report = out.get("report_seconds")
        ratio = f"{report / out['sql_seconds']:7.0f}x" if report is not None else f"{'–':>8}"
        if report is None:
            verdict = "not measured ((c) skipped)"
        elif n != GOAL_PATIENTS:
            verdict = f"({report:.1f} s; the goal is set at {GOAL_PATIENTS:,})"
        elif report <= GOAL_SECONDS:
            verdict = f"met ({report / GOAL_SECONDS:.0%} of it)"
        else:
            verdict = f"MISSED ({report / GOAL_SECONDS:.1f} times the goal)"
            ok = False
        print(
            f"  {n:>9,} {name:<10} {out['rows']:>8,} {_seconds(out['rows_seconds'])} "
            f"{_seconds(out['analysis_seconds']):>9} {_seconds(report):>10} {_seconds(out['sql_seconds'])} "
            f"{ratio}  {verdict}"
        )
    print()
    for n, name, out in results:
        if "report_skipped" in out:
            print(f"  {name} {n:,}: (c) skipped: {out['report_skipped']}")
        elif "report_build_seconds" in out:
            pdf = f", PDF {out['report_pdf_seconds']:.2f} s" if "report_pdf_seconds" in out else ""
            print(
                f"  {name} {n:,}: (c) = cohort_report {out['report_build_seconds']:.2f} s"
                " + render HTML and CSV "
                f"{out['report_render_seconds']:.2f} s{pdf}"
                + (f"; PDF skipped: {out['pdf_skipped']}" if "pdf_skipped" in out else "")
            )
        if out["problems"]:
            ok = False
            print(f"  {name} {n:,}: CHECK FAILED, the SQL baseline and Stride disagree:")
            for problem in out["problems"][:40]:
                print(f"      {problem}")
        else:
            checked = "analyse() and the report" if "report_seconds" in out else "analyse()"
            print(
                f"  {name} {n:,}: check OK: the SQL baseline's figures equal those of {checked} "
                f"({len(out['figures'])} time points × answered, scored, mean, change, responders)"
            )
    if results:
        n, name, out = results[-1]
        print(
            f"\n  the figures compared ({name}, {n:,} patients; "
            f"responders by '{DEFINITION}' among those with both):"
        )
        print(
            f"  {'time point':<10} {'answered':>9} {'scored':>8} {'mean':>7} {'changed':>8} "
            f"{'mean chg':>9} {'responders':>11}"
        )
        for point, f in out["figures"].items():
            mean = f"{f['mean']:.3f}" if f["mean"] is not None else "–"
            change = f"{f['mean_change']:+.3f}" if f["mean_change"] is not None else "–"
            responders = f"{f['responders']:,}" if f["responders"] is not None else "–"
            changed = f"{f['changed']:,}" if f["changed"] is not None else "–"
            print(
                f"  {point:<10} {f['answered']:>9,} {f['scored']:>8,} {mean:>7} {changed:>8} "
                f"{change:>9} {responders:>11}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
