"""`make bench-reads`: the signed-in read paths at 1M links and 10M clicks (PostgreSQL).

Seeds the data set of bench/large_dataset.py at the migration before the click rollups,
then upgrades to head, so the rollup migration backfills from the clicks as it would in
production. Then, through gunicorn started as the Procfile says and with a signed-in
session cookie, it times one request after another:

  the dashboard's first page, a search matching one link and one matching many, the link
  page of the big link, its stats fragment for every range (p50, p95, max);
  the big link's clicks CSV: total time, rows received, and the worker's RSS growth.

Last, the redirect rate at this size, with the default link cache and with each worker's
cache sized to hold every link, against the same at 100k links, each as a ratio to the
minimal Flask app measured just before and after it, and the workers' resident memory.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench-reads
"""

import argparse
import hashlib
import http.client
import math
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask_login.utils
import large_dataset
import wrk
from databases import Database, MigrationFailed, migrate, random_slugs, seed_links
from flask import Flask
from runs import (
    ROW_HEADER,
    ROW_UNITS,
    Measurement,
    Servers,
    app_environment,
    measure,
    print_machine_note,
    print_row,
    warm_up,
)
from servers import Server, display, resident_kib

# The revision before click_rollups (6a1b2c3d4e5f): seeding here lets its backfill run.
SEED_REVISION = "5f0c1a2b3c4d"
USER_AGENT = wrk.HEADERS[0].split(": ", 1)[1]
# Linkdeck's session cookie and the field holding the server-side session token
# (app/config.py, app/services/sessions.py).
SESSION_COOKIE_NAME = "linkdeck_session"
SESSION_COOKIE_FIELD = "sid"
CSV_TARGET_GROWTH_MB = 50


@dataclass
class Timings:
    """Sequential requests to one path: how long each took and what came back."""

    label: str
    seconds: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)

    def percentile(self, share: float) -> float:
        """The nearest-rank percentile of the durations, in milliseconds."""
        ordered = sorted(self.seconds)
        return ordered[max(math.ceil(share * len(ordered)) - 1, 0)] * 1000


@dataclass(frozen=True)
class CsvDownload:
    """One download of the big link's clicks CSV."""

    seconds: float
    first_byte_seconds: float
    rows: int
    megabytes: float
    complete: bool
    problem: str | None
    rss_before_mb: float
    rss_peak_mb: float

    @property
    def growth_mb(self) -> float:
        """How much the serving worker's resident memory grew during the download."""
        return self.rss_peak_mb - self.rss_before_mb


class SignedInClient:
    """Sequential GETs to one server, carrying a signed-in session cookie."""

    def __init__(self, port: int, cookie: str, timeout: float):
        self.port = port
        self.headers = {"User-Agent": USER_AGENT, "Cookie": f"{SESSION_COOKIE_NAME}={cookie}"}
        self.timeout = timeout

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[str, int, float]:
        """GET a path to the end; return the status (or the error), body bytes and seconds."""
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers={**self.headers, **(headers or {})})
            response = conn.getresponse()
            size = len(response.read())
            status = str(response.status)
        except (OSError, http.client.HTTPException) as error:
            size, status = 0, type(error).__name__
        finally:
            conn.close()
        return status, size, time.perf_counter() - started

    def time_path(
        self, label: str, path: str, args, headers: dict[str, str] | None = None
    ) -> Timings:
        """Up to args.samples requests (after one unmeasured), within args.budget seconds."""
        timings = Timings(label)
        status, _, _ = self.get(path, headers)
        if status != "200":
            raise SystemExit(f"GET {path} answered {status}, not 200: is the session valid?")
        started = time.monotonic()
        while len(timings.seconds) < args.samples:
            spent = time.monotonic() - started
            if len(timings.seconds) >= args.min_samples and spent > args.budget:
                break
            status, _, seconds = self.get(path, headers)
            timings.seconds.append(seconds)
            timings.statuses[status] += 1
        return timings

    def download(self, path: str, workers: list[int]) -> CsvDownload:
        """Stream a CSV to the end in 64 KiB reads while watching the workers' memory."""
        watcher = MemoryWatcher(workers)
        watcher.start()
        started = time.perf_counter()
        rows, size, first_byte, problem = -1, 0, None, None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers=self.headers)
            response = conn.getresponse()
            if response.status != 200:
                problem = f"status {response.status}"
            while chunk := response.read(65536):
                first_byte = first_byte or time.perf_counter() - started
                rows += chunk.count(b"\n")
                size += len(chunk)
        except (OSError, http.client.HTTPException) as error:
            problem = f"{type(error).__name__} after {size / 1e6:.1f} MB"
        finally:
            conn.close()
            seconds = time.perf_counter() - started
            before, peak = watcher.stop()
        return CsvDownload(
            seconds=seconds,
            first_byte_seconds=first_byte or seconds,
            rows=max(rows, 0),
            megabytes=size / 1e6,
            complete=problem is None,
            problem=problem,
            rss_before_mb=before / 1024,
            rss_peak_mb=peak / 1024,
        )


class MemoryWatcher:
    """Polls the workers' resident memory every 20 ms; reports the one that grew most."""

    def __init__(self, pids: list[int]):
        self.before = {pid: resident_kib(pid) or 0 for pid in pids}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def _poll(self) -> None:
        """Keep each worker's highest VmRSS."""
        while not self._stop.wait(0.02):
            for pid in self.before:
                rss = resident_kib(pid)
                if rss is not None:
                    self.peak[pid] = max(self.peak[pid], rss)

    def stop(self) -> tuple[int, int]:
        """Stop polling; return (before, peak) KiB of the worker that grew the most."""
        self._stop.set()
        self._thread.join()
        pid = max(self.before, key=lambda p: self.peak[p] - self.before[p])
        return self.before[pid], self.peak[pid]


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers: the master's children running the master's own command line."""
    master = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    pids = []
    for pid in server.workers():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == master:
                pids.append(pid)
        except OSError:
            continue
    return pids


def sign_in(database: Database, secret_key: str) -> str:
    """Make an owner of the big org with a live server-side session; return its cookie.

    The cookie is what Linkdeck's sign-in leaves in the browser: Flask's signed session
    with Flask-Login's user id and identifier and the session token, marked permanent.
    """
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    conn = database.connect()
    try:
        user_id = conn.execute(
            "INSERT INTO users (oidc_issuer, oidc_subject, email, email_verified, name,"
            " created_at) VALUES ('https://idp.bench.invalid', 'bench-owner',"
            " 'owner@acme.example', true, 'Bench Owner', %s) RETURNING id",
            (now,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO memberships (user_id, org_id, role, created_at)"
            " SELECT %s, id, 'owner', %s FROM orgs WHERE slug = %s",
            (user_id, now, large_dataset.BIG_ORG_SLUG),
        )
        conn.execute(
            "INSERT INTO user_sessions (user_id, token_hash, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s)",
            (user_id, hashlib.sha256(token.encode()).hexdigest(), now, now + timedelta(days=1)),
        )
        conn.commit()
    finally:
        conn.close()
    # Flask's default session interface, which Linkdeck uses, signing with Linkdeck's key.
    signer = Flask("linkdeck-bench-cookie")
    signer.config["SECRET_KEY"] = secret_key
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    with signer.test_request_context(environ_base=environ, headers={"User-Agent": USER_AGENT}):
        # What Flask-Login's login_user stores as "_id" for this address and user agent.
        identifier = flask_login.utils._create_identifier()
    session = {
        "_user_id": str(user_id),
        "_fresh": True,
        "_id": identifier,
        SESSION_COOKIE_FIELD: token,
        "_permanent": True,
    }
    return signer.session_interface.get_signing_serializer(signer).dumps(session)


class ReadsBench:
    """One `make bench-reads` run: the big database, a 100k one, and their servers."""

    def __init__(self, args: argparse.Namespace, base_url: str, workdir: Path):
        self.args = args
        self.big = Database.postgresql(base_url, "reads")
        self.small: Database | None = None
        self.anchor_slugs = workdir / "slugs-100k.txt"
        self.big_slugs = workdir / "slugs-big.txt"
        self.env = app_environment(self.big.url, self.anchor_slugs)
        self.servers = Servers(self.env, args.workers, workdir)
        self.options = wrk.WrkOptions(args.threads, args.connections, args.duration)

    def drop(self) -> None:
        """Drop the scratch databases."""
        for database in (self.big, self.small):
            if database is not None:
                database.drop()

    def seed(self) -> None:
        """Build the big data set and upgrade to head; print what each step took."""
        args = self.args
        shape = large_dataset.Shape(args.orgs, args.links, args.clicks, args.big_link_clicks)
        print(
            f"Seeding {shape.links:,} links in {shape.orgs} orgs and {shape.clicks:,} clicks"
            f" ({shape.big_link_clicks:,} on one link) into {self.big.name}"
        )
        started = time.monotonic()
        step = time.monotonic()
        migrate(self.env, SEED_REVISION)
        print(f"  {'migrate to ' + SEED_REVISION:<34}{time.monotonic() - step:>7.1f}s")
        for name, seconds in large_dataset.seed(self.big.url, shape, args.seed_jobs).items():
            print(f"  {name:<34}{seconds:>7.1f}s")
        self._upgrade_to_head()
        step = time.monotonic()
        self.big.vacuum_analyze()
        print(f"  {'VACUUM (ANALYZE)':<34}{time.monotonic() - step:>7.1f}s")
        size = self.big.scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"  {'total':<34}{time.monotonic() - started:>7.1f}s  (database {size})")
        print()

    def _upgrade_to_head(self) -> None:
        """Upgrade as the release step would; if that hits the app's statement timeout (a
        backfill over millions of clicks can), say so and upgrade again without it."""
        step = time.monotonic()
        try:
            migrate(self.env, "head")
        except MigrationFailed as failure:
            if "statement timeout" not in str(failure.code):
                raise
            timeout = self.env.get("DATABASE_STATEMENT_TIMEOUT_MS", "5000 (the default)")
            print(
                f"  ! upgrade to head FAILED after {time.monotonic() - step:.1f}s: a statement"
                f" ran into DATABASE_STATEMENT_TIMEOUT_MS={timeout}, which `flask db upgrade`"
                " (the release step) gets too. Upgrading again without it."
            )
            step = time.monotonic()
            migrate({**self.env, "DATABASE_STATEMENT_TIMEOUT_MS": "0"}, "head")
        head = self.big.scalar("SELECT version_num FROM alembic_version")
        print(f"  {'upgrade to head (' + head + ')':<34}{time.monotonic() - step:>7.1f}s")

    def read_paths(self) -> None:
        """Time the signed-in pages and the CSV export on one Linkdeck server."""
        args = self.args
        org = large_dataset.BIG_ORG_SLUG
        big_slug, few_query = self._big_link_slug(), self._rare_query()
        expected_rows = self.big.scalar(
            "SELECT count(*) FROM clicks WHERE link_id = %s", (large_dataset.BIG_LINK_ID,)
        )
        cookie = sign_in(self.big, self.env["SECRET_KEY"])
        server = self.servers.linkdeck("linkdeck reads").start()
        print("Read paths, signed in, one request at a time")
        print(f"  {display(server.words)}")
        try:
            client = SignedInClient(server.port, cookie, timeout=args.request_timeout)
            fragment = {"HX-Request": "true"}
            link = f"/orgs/{org}/links/{big_slug}"
            paths = (
                ("dashboard, first page", f"/orgs/{org}/links", None),
                (f"search ?q={few_query} (one link)", f"/orgs/{org}/links?q={few_query}", None),
                ("search ?q=newsletter (1 in 11)", f"/orgs/{org}/links?q=newsletter", None),
                (f"big link's page ({expected_rows:,} clicks)", link, None),
                ("its stats, 24 hours", f"{link}/stats?range=24h", fragment),
                ("its stats, 7 days", f"{link}/stats?range=7d", fragment),
                ("its stats, 30 days", f"{link}/stats?range=30d", fragment),
                ("its stats, all time", f"{link}/stats?range=all", fragment),
            )
            print(f"  {'path':<38}{'n':>4}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}  status")
            for label, path, headers in paths:
                timings = client.time_path(label, path, args, headers)
                print_timings(timings)
            print()
            print(f"Clicks CSV of the big link ({expected_rows:,} clicks), {link}/clicks.csv")
            for _ in range(args.csv_downloads):
                download = client.download(f"{link}/clicks.csv", worker_pids(server))
                print_download(download, expected_rows)
        finally:
            server.stop()
        print()

    def _big_link_slug(self) -> str:
        """The slug of the link with the most clicks."""
        return self.big.scalar("SELECT slug FROM links WHERE id = %s", (large_dataset.BIG_LINK_ID,))

    def _rare_query(self) -> str:
        """A search that matches a single link of the big org: one link's slug."""
        return self.big.scalar(
            "SELECT links.slug FROM links JOIN orgs ON orgs.id = links.org_id WHERE orgs.slug = %s"
            " ORDER BY links.id DESC OFFSET 1000 LIMIT 1",
            (large_dataset.BIG_ORG_SLUG,),
        )

    def redirects(self) -> None:
        """Redirect rate at this size and at 100k links, each against minimal Flask."""
        args = self.args
        self.small = Database.postgresql(self.args.base_url, "reads100k")
        small_env = {**self.env, "DATABASE_URL": self.small.url}
        migrate(small_env)
        slugs = random_slugs(100_000)
        seed_links(self.small, slugs)
        self.small.vacuum_analyze()
        self.anchor_slugs.write_text("\n".join(slugs) + "\n")
        self.big.write_slugs(self.big_slugs)
        print(
            f"Redirects: random slugs, wrk -t{args.threads} -c{args.connections}"
            f" -d{args.duration:g}s, minimal Flask measured before and after each"
        )
        print(ROW_HEADER)
        print(ROW_UNITS)
        flask_runs = [self._anchor()]
        linkdeck_runs, resident = [], {}
        big = f"{args.links // 1000:,}k links"
        # Last, each worker's cache sized to hold every link (docs/scaling.md).
        whole_cache = {**self.env, "LINK_CACHE_SIZE": str(args.links)}
        for label, env, slug_file, database in (
            ("linkdeck 100k links", small_env, self.anchor_slugs, self.small),
            (f"linkdeck {big}", self.env, self.big_slugs, self.big),
            (f"linkdeck {big}, cache all", whole_cache, self.big_slugs, self.big),
        ):
            server = self.servers.linkdeck(label, env).start()
            try:
                warm_up(server, slug_file, self.options, args.warmup)
                linkdeck_runs.append(self._measure(label, server, slug_file, database.name))
                resident[label] = [resident_kib(pid) or 0 for pid in worker_pids(server)]
            finally:
                server.stop()
            flask_runs.append(self._anchor())
        print()
        small, *bigger = ratios = [
            _against_flask(run, flask_runs[n], flask_runs[n + 1])
            for n, run in enumerate(linkdeck_runs)
        ]
        print(f"  {'':<34}{'rate x flask':>14}{'CPU/req x flask':>17}")
        for run, (rate, cpu) in zip(linkdeck_runs, ratios, strict=True):
            print(f"  {run.label:<34}{rate:>14.3f}{cpu:>17.2f}")
        for run, (rate, cpu) in zip(linkdeck_runs[1:], bigger, strict=True):
            label = run.label.removeprefix("linkdeck ") + " over 100k"
            print(f"  {label:<34}{rate / small[0]:>13.3f}x{cpu / small[1]:>16.2f}x")
        for label, kib in resident.items():
            sizes = ", ".join(f"{value / 1024:,.0f}" for value in kib)
            print(f"  workers' RSS after the run, {label}: {sizes} MB")
        print("  (CPU per request is the steadier figure when the machine is shared)")
        print()
        print_machine_note([*flask_runs, *linkdeck_runs])

    def _anchor(self) -> Measurement:
        """One measured run of the minimal Flask app."""
        server = self.servers.anchor("minimal Flask").start(ready_path="/")
        try:
            warm_up(server, self.anchor_slugs, self.options, self.args.warmup)
            return self._measure("minimal Flask", server, self.anchor_slugs)
        finally:
            server.stop()

    def _measure(
        self, label: str, server: Server, slug_file: Path, database: str | None = None
    ) -> Measurement:
        """One measured wrk run, printed at once."""
        result = measure(label, server, slug_file, self.options, postgres_database=database)
        print_row(result)
        return result


def _against_flask(run: Measurement, before: Measurement, after: Measurement):
    """A run's rate and CPU per request over the mean of minimal Flask's around it."""
    rate = run.rate / ((before.rate + after.rate) / 2)
    cpu = run.app_cpu_us / ((before.app_cpu_us + after.app_cpu_us) / 2)
    return rate, cpu


def print_timings(timings: Timings) -> None:
    """One read path's line: samples, p50, p95, max and the statuses seen."""
    statuses = ", ".join(f"{status} x{count}" for status, count in sorted(timings.statuses.items()))
    print(
        f"  {timings.label:<38}{len(timings.seconds):>4}{timings.percentile(0.5):>10,.0f}"
        f"{timings.percentile(0.95):>10,.0f}{max(timings.seconds) * 1000:>10,.0f}  {statuses}",
        flush=True,
    )


def print_download(download: CsvDownload, expected_rows: int) -> None:
    """One CSV download: time, completeness and the worker's memory growth."""
    ended = "to the end" if download.complete else f"CUT OFF ({download.problem})"
    verdict = "pass" if download.growth_mb <= CSV_TARGET_GROWTH_MB else "FAIL"
    print(
        f"  {download.seconds:.1f}s (first byte after {download.first_byte_seconds:.2f}s),"
        f" {download.megabytes:.1f} MB, streamed {ended}: {download.rows:,} rows of"
        f" {expected_rows:,}; worker RSS {download.rss_before_mb:.0f} ->"
        f" {download.rss_peak_mb:.0f} MB, growth {download.growth_mb:.1f} MB"
        f" (<= {CSV_TARGET_GROWTH_MB} MB: {verdict})",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    """The command line; `make bench-reads BENCH_ARGS=...` passes these through."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000, help="links (1000000)")
    parser.add_argument("--clicks", type=int, default=10_000_000, help="clicks (10000000)")
    parser.add_argument("--orgs", type=int, default=100, help="orgs (100)")
    parser.add_argument(
        "--big-link-clicks", type=int, default=1_000_000, help="clicks of the big link (1000000)"
    )
    parser.add_argument("--seed-jobs", type=int, default=2, help="sessions writing clicks (2)")
    parser.add_argument("--samples", type=int, default=50, help="requests per read path (50)")
    parser.add_argument(
        "--budget", type=float, default=45, help="seconds per read path, at least 5 samples (45)"
    )
    parser.add_argument("--csv-downloads", type=int, default=2, help="CSV downloads (2)")
    parser.add_argument(
        "--request-timeout", type=float, default=120, help="client timeout per request (120)"
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--warmup", type=float, default=2, help="wrk warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (2)")
    parser.add_argument("--no-redirects", action="store_true", help="skip the redirect runs")
    args = parser.parse_args()
    args.min_samples = 5
    return args


def main() -> int:
    """Seed, measure the read paths and the redirect, drop the databases."""
    args = parse_args()
    args.base_url = os.environ.get("BENCH_DATABASE_URL")
    if not args.base_url:
        print(
            "make bench-reads needs PostgreSQL: set BENCH_DATABASE_URL, e.g.\n"
            "  BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench-reads\n"
            "(a superuser: it creates and drops scratch databases and bulk-loads clicks)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="linkdeck-bench-reads-") as tmp:
        bench = ReadsBench(args, args.base_url, Path(tmp))
        try:
            bench.seed()
            bench.read_paths()
            if not args.no_redirects:
                bench.redirects()
        finally:
            bench.drop()
    print(f"make bench-reads took {(time.monotonic() - started) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
