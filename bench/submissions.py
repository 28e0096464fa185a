"""Benchmark questionnaire submissions through the patient pages against raw inserts, in the same run.

    .venv/bin/python bench/submissions.py [--patients N] [--clients C] [--only sqlite|postgres]

For each database (SQLite, then PostgreSQL when it is reachable) it makes a
fresh database in a temporary folder (PostgreSQL: a scratch database, dropped
afterwards), runs ``stride migrate``, and sets up one clinic with N patients,
each with a follow-up episode whose 1-month follow-up is open today and a
personal link. Not counted.

Then it starts the real server (``stride serve --threads 8``, waitress) and C
concurrent clients (threads) do what a phone does, one patient at a time, for
each instrument in turn (``nprs`` then ``faam-adl``): GET the questionnaire
page (CSRF cookie and token from the form), POST the answers, follow the
redirect. A submission's latency covers those three requests. Afterwards the
database is checked: exactly one completed response per submission with the
answers sent, one score per scale, nothing in progress, nothing twice.

The baseline, in the same run and from as many threads: inserting the same
response and score rows with the plain driver (``sqlite3`` / ``psycopg``),
one transaction per submission, single-row inserts, no HTTP and no ORM.

Prints a table per database and the ratios; exits non-zero when a submission
failed or the check finds a lost, doubled or altered answer. The server and
the temporary databases are removed on exit, also on Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import queue
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

INSTRUMENTS = ("nprs", "faam-adl")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"

# Run in a subprocess with the benchmark's STRIDE_HOME / DATABASE_URL: one clinic, N patients,
# each with an episode whose 1-month follow-up is open today and a personal link.
SETUP = """
import datetime as dt, json, sys
import django
django.setup()
from django.db import transaction
from stride.care.models import Condition, ConditionType, Site
from stride.clinics.models import Clinic
from stride.outcomes import links, services
from stride.patients.models import Consent, Patient

n = int(sys.argv[1])
rows = []
with transaction.atomic():
    clinic = Clinic.objects.create(name="Bench clinic", slug="bench", time_zone="UTC")
    today = clinic.today()
    kind = ConditionType.objects.get(code="morton-neuroma")
    site = Site.objects.get(code="im-space-3")
    for i in range(n):
        patient = Patient.objects.create(
            clinic=clinic, record_number=f"BENCH-{i:06d}", given_name="Ana", family_name="Silva",
            date_of_birth=dt.date(1970, 5, 17), sex="female",
        )
        Consent.objects.create(patient=patient, version="1", consented_on=dt.date(2025, 1, 10))
        condition = Condition(
            patient=patient, condition_type=kind, laterality="left", site=site, onset_date=dt.date(2024, 3, 1)
        )
        condition.full_clean()
        condition.save()
        episode = services.start_episode(condition, today - dt.timedelta(days=30))
        follow_up = episode.follow_ups.get(timepoint="1m")
        assert follow_up.is_open(today), follow_up
        assert {"nprs", "faam-adl"} <= set(follow_up.instruments), follow_up.instruments
        rows.append({"token": links.token_for(links.new_link(patient)), "follow_up": follow_up.pk})
print(json.dumps(rows))
"""

# Run afterwards: what the database holds, against the answers the clients sent (a JSON file).
VERIFY = """
import json, sys
import django
django.setup()
from django.db.models import Count
from stride.core import instruments
from stride.outcomes.models import QuestionnaireResponse, Score

sent = {(s["follow_up"], s["instrument"]): s["answers"] for s in json.load(open(sys.argv[1]))}
library = instruments.library()
completed = list(QuestionnaireResponse.objects.filter(status="completed").annotate(n_scores=Count("scores")))
stored = {(r.follow_up_id, r.instrument): r for r in completed}
print(json.dumps({
    "completed": len(completed),
    "in_progress": QuestionnaireResponse.objects.exclude(status="completed").count(),
    "distinct": len(stored),
    "scores": Score.objects.count(),
    "expected_scores": sum(len(library[code].scales) for _, code in sent),
    "lost": sum(1 for key in sent if key not in stored),
    "unexpected": sum(1 for key in stored if key not in sent),
    "altered": sum(1 for key, r in stored.items() if key in sent and r.answers != sent[key]),
    "wrong_score_count": sum(1 for r in completed if r.n_scores != len(library[r.instrument].scales)),
}))
"""


# --------------------------------------------------------------------------- measurements


@dataclass
class Run:
    """One measured run: which submissions were stored, and how long each took."""

    label: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, per stored submission
    post_latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stored(self, latency: float, post: float | None = None) -> None:
        with self.lock:
            self.ok += 1
            self.latencies.append(latency)
            if post is not None:
                self.post_latencies.append(post)

    def failed(self, why: str) -> None:
        with self.lock:
            self.failures.append(why)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def answers_for(patient: int, instrument: str) -> list[int]:
    rng = random.Random(f"{patient}:{instrument}")
    if instrument == "nprs":
        return [rng.randint(0, 10)]
    return [rng.randint(0, 4) for _ in range(21)]  # faam-adl: 21 items, all answered


def run_threads(count: int, work: Callable[[int], None], stop: threading.Event) -> float:
    """Run ``work(i)`` in ``count`` daemon threads; the wall time. Ctrl+C stops waiting at once."""
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        raise
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the phones


class Phone:
    """One patient's phone: a keep-alive connection and its own cookies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection(HOST, port, timeout=60)
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.connection.close()

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        headers = {"User-Agent": "stride-bench-phone", "Accept": "text/html"}
        body = None
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://{HOST}:{self.port}"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers.get("Location", ""), text

    def submit(self, token: str, follow_up: int, instrument: str, answers: list[int]) -> tuple[float, float]:
        """GET the form, POST the answers, follow the redirect; (whole, POST alone) seconds, or raise."""
        path = f"/q/{token}/{follow_up}/{instrument}/"
        started = time.perf_counter()
        status, _, page = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {instrument}: HTTP {status}")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        version = re.search(r'name="version" value="([^"]*)"', page)
        if csrf is None or version is None or "csrftoken" not in self.cookies:
            raise RuntimeError(f"GET {instrument}: no CSRF token or version in the form")
        form = {"csrfmiddlewaretoken": csrf.group(1), "version": version.group(1)}
        form |= {f"item_{i}": str(a) for i, a in enumerate(answers)}
        posted = time.perf_counter()
        status, location, _ = self.request("POST", path, form)
        post_seconds = time.perf_counter() - posted
        if status != 302 or urllib.parse.urlsplit(location).path != f"/q/{token}/":
            raise RuntimeError(f"POST {instrument}: HTTP {status} {location}")
        status, _, _ = self.request("GET", urllib.parse.urlsplit(location).path)
        if status != 200:
            raise RuntimeError(f"redirect after {instrument}: HTTP {status}")
        return time.perf_counter() - started, post_seconds


def drive(port: int, patients: list[dict], clients: int, stop: threading.Event) -> Run:
    run = Run("stride")
    jobs: queue.SimpleQueue[dict] = queue.SimpleQueue()
    for patient in patients:
        jobs.put(patient)

    def client(_: int) -> None:
        while not stop.is_set():
            try:
                patient = jobs.get_nowait()
            except queue.Empty:
                return
            phone = Phone(port)
            try:
                for instrument in INSTRUMENTS:
                    answers = answers_for(patient["follow_up"], instrument)
                    try:
                        whole, post = phone.submit(
                            patient["token"], patient["follow_up"], instrument, answers
                        )
                    except (OSError, http.client.HTTPException, RuntimeError) as exc:
                        run.failed(f"{type(exc).__name__}: {exc}")
                        phone.close()
                        phone = Phone(port)
                    else:
                        run.stored(whole, post)
            finally:
                phone.close()

    run.seconds = run_threads(clients, client, stop)
    return run


# --------------------------------------------------------------------------- the baseline


RESPONSE_COLUMNS = (
    "patient_id, follow_up_id, instrument, instrument_version, context, answers, status, source,"
    " collected_on, started_at, submitted_at, flags"
)
SCORE_COLUMNS = (
    "response_id, instrument, scale, value, valid, answered, not_applicable, missing, policy, flags"
)


def _baseline_tables(auto_id: str, boolean: str) -> list[str]:
    return [
        f"CREATE TABLE raw_response (id {auto_id}, patient_id BIGINT NOT NULL, follow_up_id BIGINT,"
        " instrument VARCHAR(40) NOT NULL, instrument_version VARCHAR(20) NOT NULL, context VARCHAR(100),"
        " answers TEXT NOT NULL, status VARCHAR(12) NOT NULL, source VARCHAR(10) NOT NULL,"
        " collected_on DATE NOT NULL, started_at TIMESTAMP NOT NULL, submitted_at TIMESTAMP,"
        " flags TEXT NOT NULL,"
        " UNIQUE (follow_up_id, instrument))",
        "CREATE INDEX raw_response_patient ON raw_response (patient_id)",
        f"CREATE TABLE raw_score (id {auto_id}, response_id BIGINT NOT NULL REFERENCES raw_response (id),"
        f" instrument VARCHAR(40) NOT NULL, scale VARCHAR(40) NOT NULL, value DOUBLE PRECISION,"
        f" valid {boolean} NOT NULL, answered SMALLINT NOT NULL, not_applicable SMALLINT NOT NULL,"
        " missing SMALLINT NOT NULL, policy VARCHAR(40) NOT NULL, flags TEXT NOT NULL,"
        " UNIQUE (response_id, scale))",
    ]


def _submissions(patients: list[dict]) -> list[tuple[int, int, str, list[int]]]:
    return [
        (i + 1, p["follow_up"], code, answers_for(p["follow_up"], code))
        for i, p in enumerate(patients)
        for code in INSTRUMENTS
    ]


def _baseline(
    patients: list[dict],
    clients: int,
    stop: threading.Event,
    connect: Callable[[], object],
    insert_one: Callable[[object, tuple[int, int, str, list[int]]], None],
) -> Run:
    run = Run("raw inserts")
    jobs: queue.SimpleQueue[tuple[int, int, str, list[int]]] = queue.SimpleQueue()
    for submission in _submissions(patients):
        jobs.put(submission)

    def worker(_: int) -> None:
        db = connect()
        try:
            while not stop.is_set():
                try:
                    submission = jobs.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    insert_one(db, submission)
                except Exception as exc:
                    run.failed(f"{type(exc).__name__}: {exc}")
                else:
                    run.stored(time.perf_counter() - started)
        finally:
            db.close()  # type: ignore[attr-defined]

    run.seconds = run_threads(clients, worker, stop)
    return run


def _row(submission: tuple[int, int, str, list[int]]) -> tuple[tuple, tuple]:
    patient, follow_up, code, answers = submission
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    response = (patient, follow_up, code, "1", "", json.dumps(answers), "completed", "patient",
                time.strftime("%Y-%m-%d"), now, now, "[]")  # fmt: skip
    value = float(answers[0]) if code == "nprs" else 100 * sum(answers) / (4 * len(answers))
    score = (code, "total", value, True, len(answers), 0, 0, "default", "[]")
    return response, score


def baseline_sqlite(path: str, patients: list[dict], clients: int, stop: threading.Event) -> Run:
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    for statement in _baseline_tables("INTEGER PRIMARY KEY AUTOINCREMENT", "BOOL"):
        setup.execute(statement)
    setup.close()

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
        db.execute("PRAGMA synchronous=NORMAL")  # as Stride's own connections
        return db

    def insert_one(db: sqlite3.Connection, submission: tuple[int, int, str, list[int]]) -> None:
        response, score = _row(submission)
        db.execute("BEGIN IMMEDIATE")  # as Stride's own transactions
        try:
            cursor = db.execute(
                f"INSERT INTO raw_response ({RESPONSE_COLUMNS}) VALUES ({', '.join('?' * 12)})", response
            )
            db.execute(
                f"INSERT INTO raw_score ({SCORE_COLUMNS}) VALUES ({', '.join('?' * 10)})",
                (cursor.lastrowid, *score),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    return _baseline(patients, clients, stop, connect, insert_one)


def baseline_postgres(url: str, patients: list[dict], clients: int, stop: threading.Event) -> Run:
    import psycopg

    with psycopg.connect(url, autocommit=True) as setup:
        for statement in _baseline_tables("BIGSERIAL PRIMARY KEY", "BOOLEAN"):
            setup.execute(statement)

    def connect() -> object:
        return psycopg.connect(url)

    def insert_one(db: psycopg.Connection, submission: tuple[int, int, str, list[int]]) -> None:
        response, score = _row(submission)
        with db.transaction():
            response_id = db.execute(
                f"INSERT INTO raw_response ({RESPONSE_COLUMNS})"
                f" VALUES ({', '.join(['%s'] * 12)}) RETURNING id",
                response,
            ).fetchone()[0]
            db.execute(
                f"INSERT INTO raw_score ({SCORE_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",
                (response_id, *score),
            )

    return _baseline(patients, clients, stop, connect, insert_one)


# --------------------------------------------------------------------------- set-up and clean-up


def _fail(what: str, result: subprocess.CompletedProcess) -> None:
    raise SystemExit(f"{what} failed:\n{(result.stderr or result.stdout).strip()[-3000:]}")


def stride(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "stride", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        _fail(f"stride {' '.join(args)}", result)
    return result.stdout


def python(code: str, args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        _fail("a set-up step", result)
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server(env: dict[str, str], folder: Path, threads: int) -> Iterator[int]:
    """``stride serve`` in its own session (Ctrl+C reaches us, we stop it); yields its port."""
    port = free_port()
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stride",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--threads",
            str(threads),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.flush()
                raise SystemExit(f"stride serve exited:\n{(folder / 'server.log').read_text()[-3000:]}")
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("stride serve did not start listening within 60 s") from None
                time.sleep(0.1)
        yield port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh scratch database on the server of ``base_url``, dropped afterwards."""
    import psycopg

    name = f"stride_bench_{os.getpid()}_{int(time.time())}"
    parts = urllib.parse.urlsplit(base_url)
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_reachable(url: str) -> str | None:
    """The server's version, or None (and why, printed) when it cannot be reached."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as db:
            return db.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"  PostgreSQL at {url} is not reachable ({reason}): PostgreSQL skipped")
        return None


# --------------------------------------------------------------------------- one database


def measure(
    name: str, database_url: str | None, args: argparse.Namespace, stop: threading.Event
) -> tuple[Run, Run, dict, float]:
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"stride-bench-{name}-")))
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "STRIDE_DEBUG"}}
        env |= {
            "STRIDE_HOME": str(home),
            "DJANGO_SETTINGS_MODULE": "stride.settings",
            "STRIDE_LOG_LEVEL": "WARNING",
        }
        if database_url is not None:
            env["DATABASE_URL"] = stack.enter_context(postgres_database(database_url))

        started = time.perf_counter()
        stride(["migrate", "--no-input", "-v", "0"], env)
        patients = json.loads(python(SETUP, [str(args.patients)], env))
        setup_seconds = time.perf_counter() - started

        with server(env, home, args.server_threads) as port:
            run = drive(port, patients, args.clients, stop)

        sent = [
            {"follow_up": p["follow_up"], "instrument": code, "answers": answers_for(p["follow_up"], code)}
            for p in patients
            for code in INSTRUMENTS
        ]
        (home / "sent.json").write_text(json.dumps(sent))
        check = json.loads(python(VERIFY, [str(home / "sent.json")], env))

        if database_url is None:
            raw = baseline_sqlite(str(home / "baseline.sqlite3"), patients, args.clients, stop)
        else:
            raw = baseline_postgres(env["DATABASE_URL"], patients, args.clients, stop)
        return run, raw, check, setup_seconds


def report(name: str, run: Run, raw: Run, check: dict, setup_seconds: float, patients: int) -> bool:
    expected = patients * len(INSTRUMENTS)

    def line(label: str, r: Run) -> None:
        p50, p95 = 1000 * percentile(r.latencies, 50), 1000 * percentile(r.latencies, 95)
        print(
            f"  {name:<10} {label:<24} {r.ok:>11,} {r.seconds:>8.2f} {r.rate:>9.1f} {p50:>8.2f} {p95:>8.2f}"
        )

    line("stride (HTTP)", run)
    line("baseline: raw inserts", raw)
    if run.ok and raw.ok:
        seconds, rate = run.seconds / raw.seconds, run.rate / raw.rate
        p50 = percentile(run.latencies, 50) / percentile(raw.latencies, 50)
        p95 = percentile(run.latencies, 95) / percentile(raw.latencies, 95)
        print(
            f"  {name:<10} {'ratio stride / raw':<24} {'':>11} {seconds:>7.1f}x {rate:>8.4f}x"
            f" {p50:>7.1f}x {p95:>7.1f}x"
        )
    post50 = 1000 * percentile(run.post_latencies, 50)
    post95 = 1000 * percentile(run.post_latencies, 95)
    problems = []
    if run.failures:
        problems.append(f"{len(run.failures)} failed submission(s), e.g. {run.failures[0]}")
    if raw.failures:
        problems.append(f"{len(raw.failures)} failed baseline insert(s), e.g. {raw.failures[0]}")
    if run.ok != expected:
        problems.append(f"{run.ok} submissions answered as stored, {expected} expected")
    if check["completed"] != run.ok or check["distinct"] != check["completed"]:
        problems.append(f"{check['completed']} completed responses in the database for {run.ok} stored")
    if check["scores"] != check["expected_scores"] or check["wrong_score_count"]:
        problems.append(f"{check['scores']} scores, {check['expected_scores']} expected")
    for what in ("lost", "unexpected", "altered", "in_progress"):
        if check[what]:
            problems.append(f"{check[what]} {what.replace('_', ' ')}")
    verdict = "OK" if not problems else "FAILED: " + "; ".join(problems)
    print(
        f"  {'':<10} check: {check['completed']:,} completed responses and {check['scores']:,} scores "
        f"({expected:,} and {check['expected_scores']:,} expected), {check['lost']} lost, "
        f"{check['completed'] - check['distinct']} doubled, {check['altered']} altered: {verdict}"
    )
    print(
        f"  {'':<10} the POST alone: p50 {post50:.1f} ms, p95 {post95:.1f} ms; "
        f"set-up (migrate + {patients:,} patients) {setup_seconds:.1f} s, not counted"
    )
    return not problems


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--patients", "-n", type=int, default=200, help="patients, each answering 2 (default 200)"
    )
    parser.add_argument("--clients", "-c", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--server-threads", type=int, default=8, help="stride serve --threads (default 8)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="measure one database only")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("STRIDE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a server to create the scratch database on (default $STRIDE_BENCH_POSTGRES_URL or %(default)s)",
    )
    args = parser.parse_args()
    if args.patients < 1 or args.clients < 1 or args.server_threads < 1:
        parser.error("--patients, --clients and --server-threads must be at least 1")

    # SIGTERM cleans up like Ctrl+C: the server is stopped and the scratch databases dropped.
    signal.signal(signal.SIGTERM, _interrupt)
    stop = threading.Event()
    expected = args.patients * len(INSTRUMENTS)
    print(
        f"stride submissions benchmark: {args.patients:,} patients × {len(INSTRUMENTS)} instruments "
        f"({', '.join(INSTRUMENTS)}) = {expected:,} submissions, {args.clients} concurrent clients, "
        f"server threads {args.server_threads}"
    )
    databases: list[tuple[str, str | None]] = []
    versions = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPU(s)"]
    if args.only in (None, "sqlite"):
        databases.append(("SQLite", None))
        versions.append(f"SQLite {sqlite3.sqlite_version}")
    if args.only in (None, "postgres"):
        version = postgres_reachable(args.postgres_url)
        if version is not None:
            databases.append(("PostgreSQL", args.postgres_url))
            versions.append(f"PostgreSQL {version}")
        elif args.only == "postgres":
            return 2
    print(f"  {', '.join(versions)}")
    print(
        "  a submission = GET the form, POST the answers, follow the redirect; "
        "the baseline inserts its response and score rows in one transaction\n"
    )
    print(
        f"  {'database':<10} {'run':<24} {'submissions':>11} {'seconds':>8} {'subm/s':>9}"
        f" {'p50 ms':>8} {'p95 ms':>8}"
    )
    ok = True
    try:
        for name, url in databases:
            run, raw, check, setup_seconds = measure(name, url, args, stop)
            ok = report(name, run, raw, check, setup_seconds, args.patients) and ok
    except KeyboardInterrupt:
        stop.set()
        print("\ninterrupted: server stopped, temporary databases removed", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
