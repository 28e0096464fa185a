"""Benchmark `stride synth` against baselines measured in the same run.

    .venv/bin/python bench/synth.py [--patients N] [--seed S]

Creates a fresh STRIDE_HOME in a temporary folder (SQLite), runs the
migrations, then times, each in its own process:

* ``stride synth --patients N``: generating and writing everything — the
  clinical records and the follow-up (episodes, follow-ups, questionnaire
  responses, scores, contacts);
* the pure generator alone for the same N (no database): the floor set by
  making the data (its record count leaves out the scores, which the writer
  computes);
* a raw ``sqlite3`` ``executemany`` of as many rows as the synth run wrote,
  all patient-sized (11 columns, one transaction, one unique index, no ORM),
  into a scratch database: the floor set by SQLite itself.

It prints the timings, the rows written and the ratios against both
baselines, and exits non-zero when the synth run misses its budget
(100,000 patients in under two minutes, scaled linearly for other N).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS_PER_100K = 120.0

GENERATOR_ONLY = """
import datetime as dt, sys, time
from stride.core import synth
n, seed = int(sys.argv[1]), int(sys.argv[2])
started = time.perf_counter()
rows = 0
staff = {"synthetic": ["c1", "c2", "c3"]}
for patient in synth.generate(seed, n, ["synthetic"], dt.date.today(), staff):
    rows += 2 + len(patient.conditions) + len(patient.history) + len(patient.procedures)
    rows += sum(len(p.injectates) + len(p.adverse_events) for p in patient.procedures)
    for episode in patient.episodes:
        rows += 1 + len(episode.follow_ups)
        rows += sum(len(f.responses) + len(f.contacts) for f in episode.follow_ups)
print(time.perf_counter() - started, rows)
"""

RAW_SQLITE = """
import sqlite3, sys, time
n, path = int(sys.argv[1]), sys.argv[2]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute(
    "CREATE TABLE patient (id INTEGER PRIMARY KEY, clinic_id INTEGER NOT NULL,"
    " record_number TEXT NOT NULL, given_name TEXT, family_name TEXT, date_of_birth TEXT,"
    " sex TEXT, email TEXT, phone TEXT, height_cm DECIMAL, weight_kg DECIMAL,"
    " activity_level TEXT, UNIQUE (clinic_id, record_number))"
)
rows = [
    (1, f"B-{i:06d}", "Ana", "Silva", "1970-05-17", "female", f"ana.silva{i}@example.org",
     "+44 7700 900123", "165.5", "70.2", "recreational")
    for i in range(n)
]
started = time.perf_counter()
db.execute("BEGIN")
db.executemany(
    "INSERT INTO patient (clinic_id, record_number, given_name, family_name, date_of_birth,"
    " sex, email, phone, height_cm, weight_kg, activity_level)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    rows,
)
db.execute("COMMIT")
print(time.perf_counter() - started)
"""


def _stride() -> list[str]:
    return [sys.executable, "-m", "stride"]


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:4])}... failed:\n{result.stderr or result.stdout}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", "-n", type=int, default=100_000, help="default 100000")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()
    n = args.patients
    if n < 1:
        parser.error("--patients must be at least 1")

    with tempfile.TemporaryDirectory(prefix="stride-bench-") as home:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
        env |= {"STRIDE_HOME": home, "DJANGO_SETTINGS_MODULE": "stride.settings"}

        print(f"stride synth benchmark: {n:,} patients, seed {args.seed}")
        print(
            f"  Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPU(s), STRIDE_HOME {home}"
        )

        migrate, _ = _run([*_stride(), "migrate", "--no-input", "-v", "0"], env)
        print(f"  {'migrate (fresh database)':<36} {migrate:8.2f} s   not counted")

        command = ["synth", "--patients", str(n), "--seed", str(args.seed), "--no-progress"]
        synth, output = _run([*_stride(), *command], env)
        counts = {
            what.strip(): int(number.replace(",", ""))
            for what, number in re.findall(r"^\s+([a-z -]+?)\s+([\d,]+)$", output, re.M)
        }
        rows = sum(counts.values())

        _, generated = _run([sys.executable, "-c", GENERATOR_ONLY, str(n), str(args.seed)], env)
        generator_seconds, generator_rows = generated.split()
        generator = float(generator_seconds)

        scratch = str(Path(home) / "baseline.sqlite3")
        _, raw_output = _run([sys.executable, "-c", RAW_SQLITE, str(rows), scratch], env)
        raw = float(raw_output)

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"  {label:<36} {seconds:8.2f} s   {note}")

    line("stride synth (wall, incl. start-up)", synth, f"{rows:,} rows, {rows / synth:,.0f} rows/s")
    for what, number in counts.items():
        print(f"      {what:<16} {number:>10,}")
    line("baseline: generator alone", generator, f"{int(generator_rows):,} records, no database")
    line("baseline: raw sqlite3 executemany", raw, f"{rows:,} patient-sized rows")
    print(f"  ratio synth / generator alone        {synth / generator:8.1f} x")
    print(f"  ratio synth / raw sqlite3 insert     {synth / raw:8.1f} x")
    budget = BUDGET_SECONDS_PER_100K * n / 100_000
    verdict = "within" if synth <= budget else "OVER"
    print(f"  budget {budget:.0f} s for {n:,} patients: {verdict} ({synth / budget:.0%} of it)")
    return 0 if synth <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
