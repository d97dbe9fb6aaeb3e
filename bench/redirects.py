"""Redirect throughput benchmark: gunicorn as the Procfile runs it, against a real database.

Not a test: it prints figures. It seeds a database with links, starts gunicorn on
127.0.0.1, sends a bounded number of GET /<slug> requests from several threads, and
reports requests per second, latency percentiles, and whether every 302 was counted. The
same load against a minimal Flask app (bench/minimal_app.py) in the same run gives the
yardstick: `ratio` is Linkdeck's rate over that app's.

    make bench                                   # SQLite file in a temp directory
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench
"""

import argparse
import http.client
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(base_url: str | None, workdir: Path) -> tuple[str, callable]:
    """A fresh database URL for this run and a function that removes it afterwards."""
    if not base_url:
        return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"linkdeck_bench_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(False), drop


def seed(env: dict, database_url: str, links: int) -> list[str]:
    """Migrate and insert one org with `links` links; return their slugs."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    slugs = [f"bench{n:06d}" for n in range(links)]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orgs (name, slug, created_at) VALUES ('Bench', 'bench', :t)"),
            {"t": "2026-01-01T00:00:00+00:00"},
        )
        org_id = conn.execute(text("SELECT id FROM orgs WHERE slug = 'bench'")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO links (org_id, slug, destination, created_at, updated_at,"
                " is_active, click_count) VALUES (:org, :slug, :dest, :t, :t, true, 0)"
            ),
            [
                {
                    "org": org_id,
                    "slug": s,
                    "dest": f"https://example.com/{s}",
                    "t": "2026-01-01T00:00:00+00:00",
                }
                for s in slugs
            ],
        )
    engine.dispose()
    return slugs


def load(
    port: int, slugs: list[str], requests: int, concurrency: int
) -> tuple[list[float], list[int]]:
    """Send `requests` GETs spread over `concurrency` threads; return latencies and statuses."""

    def worker(count: int):
        latencies, statuses = [], []
        rng = random.Random()
        for _ in range(count):
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/{rng.choice(slugs)}", headers={"User-Agent": CHROME})
            response = conn.getresponse()
            response.read()
            conn.close()
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status)
        return latencies, statuses

    share = [
        requests // concurrency + (1 if n < requests % concurrency else 0)
        for n in range(concurrency)
    ]
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, share))
    return [lat for lats, _ in results for lat in lats], [s for _, sts in results for s in sts]


def measure(
    app_path: str, env: dict, slugs: list[str], args
) -> tuple[list[float], list[int], float]:
    """Serve `app_path` with gunicorn as the Procfile does, warm it up, then load it; return
    latencies, statuses and the seconds the measured run took."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app_path,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "sync",
            "--no-control-socket",
            "--graceful-timeout",
            "20",
        ],
        cwd=ROOT,
        env={**env, "BENCH_LINKS": str(args.links)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"gunicorn did not start {app_path}") from None
                time.sleep(0.1)
        load(port, slugs, min(200, args.requests), args.concurrency)  # warm-up
        started = time.perf_counter()
        latencies, statuses = load(port, slugs, args.requests, args.concurrency)
        return latencies, statuses, time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)


def report(name: str, run: tuple[list[float], list[int], float]) -> float:
    """Print one app's throughput and latency percentiles; return its requests per second."""
    latencies, statuses, elapsed = run
    rate = len(statuses) / elapsed
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p90, p99 = (quantiles[n] * 1000 for n in (49, 89, 98))
    print(f"{name}: throughput={rate:.0f} req/s p50={p50:.1f} p90={p90:.1f} p99={p99:.1f} ms")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        database_url, drop = prepare_database(os.environ.get("BENCH_DATABASE_URL"), Path(tmp))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_hex(32),
            "SHORT_BASE_URL": "https://go.bench.test",
            # The load generator calls 127.0.0.1; a real deployment answers its own hosts only.
            "TRUSTED_HOSTS": "go.bench.test,127.0.0.1",
            # Required to start; the benchmark never signs in, so no provider has to answer.
            "OIDC_ISSUER": "https://idp.bench.invalid",
            "OIDC_CLIENT_ID": "linkdeck-bench",
        }
        slugs = seed(env, database_url, args.links)
        # The minimal Flask app first, then Linkdeck, each warmed up, on the same machine.
        baseline = measure("bench.minimal_app:app", env, slugs, args)
        linkdeck = measure("wsgi:app", env, slugs, args)
        engine = create_engine(database_url)
        with engine.connect() as conn:
            clicks = conn.execute(text("SELECT count(*) FROM clicks")).scalar_one()
        engine.dispose()
        drop()

    statuses = linkdeck[1]
    redirects = statuses.count(302)
    kind = make_url(database_url).get_backend_name()
    print(
        f"database={kind} workers={args.workers} concurrency={args.concurrency} links={args.links}"
    )
    print(f"requests={len(statuses)} redirects_302={redirects} other={len(statuses) - redirects}")
    rate = report("linkdeck", linkdeck)
    minimal_rate = report("minimal_flask", baseline)
    print(f"ratio={rate / minimal_rate:.2f} (Linkdeck's rate over the minimal Flask app's)")
    warmup = min(200, args.requests)
    print(f"clicks_recorded={clicks} expected={redirects + warmup} (warm-up included)")
    return 0 if redirects == len(statuses) and clicks == redirects + warmup else 1


if __name__ == "__main__":
    sys.exit(main())
