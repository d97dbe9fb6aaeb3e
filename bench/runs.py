"""What `make bench` and `make bench-reads` share: the servers they start, one measured wrk
run with the CPU it cost, and the tables they print."""

import contextlib
import os
import resource
import secrets
import socket
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import wrk
from servers import (
    BENCH,
    ROOT,
    PostgresBackendCpu,
    Server,
    anchor_words,
    bound_port,
    machine_cpu_seconds,
    procfile_web_words,
)

# Anchor name -> gunicorn app module, imported from bench/.
ANCHORS = {"bare WSGI": "bare_app:app", "minimal Flask": "minimal_app:app"}
# More than this many busy cores of other work during a run makes its figures doubtful.
BUSY_MACHINE_CORES = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_environment(database_url: str, slug_file: Path) -> dict[str, str]:
    """The environment every server gets: Linkdeck's settings and the anchors' slug file."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_hex(32),
        "SHORT_BASE_URL": "https://go.bench.test",
        # wrk calls 127.0.0.1; a real deployment answers its own hosts only.
        "TRUSTED_HOSTS": "go.bench.test,127.0.0.1",
        # Plain HTTP on 127.0.0.1: a Secure (__Host-) cookie would never be sent back.
        "SESSION_COOKIE_SECURE": "false",
        # Required to start; no request here signs in through a provider.
        "OIDC_ISSUER": "https://idp.bench.invalid",
        "OIDC_CLIENT_ID": "linkdeck-bench",
        # Not a developer's Redis from .env: the redirect counts only misses there anyway.
        "RATELIMIT_STORAGE_URI": "memory://",
        "BENCH_SLUG_FILE": str(slug_file),
    }
    # gunicorn would add these to every command line, anchors' and Linkdeck's alike.
    env.pop("GUNICORN_CMD_ARGS", None)
    return env


@dataclass
class Servers:
    """Makes the servers of one benchmark run: Linkdeck as the Procfile says, and anchors."""

    env: dict[str, str]
    workers: int
    workdir: Path
    count: int = 0

    def linkdeck_command(self) -> list[str]:
        """Linkdeck's command: the Procfile's web line, on a free port."""
        return procfile_web_words(free_port(), self.workers)

    def anchor_command(self, name: str) -> list[str]:
        """An anchor's command: the web line serving ANCHORS[name], without --config."""
        return anchor_words(self.linkdeck_command(), ANCHORS[name])

    def linkdeck(self, name: str = "linkdeck", env: dict[str, str] | None = None) -> Server:
        """Linkdeck in the repository root, with a click spool directory of its own."""
        self.count += 1
        spool = self.workdir / f"click-spool-{self.count}"
        spool.mkdir()
        env = {**(env or self.env), "CLICK_SPOOL_DIR": str(spool)}
        return self._server(name, self.linkdeck_command(), ROOT, env)

    def anchor(self, name: str) -> Server:
        """An anchor app (a key of ANCHORS) under the same gunicorn flags, in bench/."""
        self.count += 1
        return self._server(name, self.anchor_command(name), BENCH, self.env)

    def _server(self, name: str, words: list[str], cwd: Path, env: dict[str, str]) -> Server:
        """A server that logs (access log included) to a file of its own."""
        env = {**env, "PORT": str(bound_port(words)), "WEB_CONCURRENCY": str(self.workers)}
        log = self.workdir / f"{self.count:02d}-{name.replace(' ', '-')}.log"
        return Server(name, words, cwd, env, log)


@dataclass(frozen=True)
class Measurement:
    """One measured wrk run against one server, with the CPU it cost per request."""

    label: str
    report: wrk.WrkReport
    app_cpu_us: float
    pg_cpu_us: float | None
    idle_pct: float
    # Busy cores that were not the server, wrk, its PostgreSQL backends or this benchmark:
    # other work on the machine, competing for the same CPU.
    other_cores: float
    # Server processes started during the run: workers replaced (--max-requests, a
    # timeout, a crash), each paying the app's start-up while requests wait.
    new_processes: int

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.report.rate

    @property
    def p99_ms(self) -> float:
        """The 99th percentile latency in milliseconds."""
        return self.report.p99_ms


def measure(
    label: str,
    server: Server,
    slug_file: Path,
    options: wrk.WrkOptions,
    *,
    postgres_database: str | None = None,
) -> Measurement:
    """Load `server` with random slugs from `slug_file` and account for the CPU used:
    the server's processes, wrk, the backends of `postgres_database`, the machine."""
    busy_before, idle_before = machine_cpu_seconds()
    (app_before, processes_before), own_before = server.usage(), _own_cpu_seconds()
    started = time.monotonic()
    backends = PostgresBackendCpu(postgres_database) if postgres_database else None
    with backends or contextlib.nullcontext():
        report = wrk.run(server.port, slug_file, options)
    elapsed = time.monotonic() - started
    app_after, processes_after = server.usage()
    app_cpu = app_after - app_before
    busy_after, idle_after = machine_cpu_seconds()
    busy, idle = busy_after - busy_before, idle_after - idle_before
    pg_cpu = backends.seconds if backends else 0.0
    ours = app_cpu + pg_cpu + report.cpu_seconds + _own_cpu_seconds() - own_before
    requests = max(report.requests, 1)
    return Measurement(
        label=label,
        report=report,
        app_cpu_us=app_cpu / requests * 1e6,
        pg_cpu_us=pg_cpu / requests * 1e6 if postgres_database else None,
        idle_pct=100 * idle / max(busy + idle, 1e-9),
        other_cores=max(busy - ours, 0.0) / elapsed,
        new_processes=len(processes_after - processes_before),
    )


def _own_cpu_seconds() -> float:
    """CPU this benchmark process has used (its sampling of /proc, mostly)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def warm_up(server: Server, slug_file: Path, options: wrk.WrkOptions, seconds: float) -> None:
    """Load the server briefly, unmeasured: imports, caches and connections get made."""
    if seconds > 0:
        wrk.run(server.port, slug_file, replace(options, seconds=seconds))


ROW_HEADER = (
    f"  {'run':<26}{'rate/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'app CPU':>10}{'PG CPU':>9}"
    f"{'idle%':>7}{'other':>7}{'new':>6}{'errors':>8}"
)
ROW_UNITS = (
    f"  {'':<26}{'':>9}{'':>9}{'':>9}{'us/req':>10}{'us/req':>9}{'':>7}{'cores':>7}{'procs':>6}"
)


def print_row(measurement: Measurement) -> None:
    """One run as a line of the results table."""
    report = measurement.report
    pg = "-" if measurement.pg_cpu_us is None else f"{measurement.pg_cpu_us:,.0f}"
    print(
        f"  {measurement.label:<26}{report.rate:>9,.0f}{report.p50_ms:>9.2f}{report.p99_ms:>9.2f}"
        f"{measurement.app_cpu_us:>10,.0f}{pg:>9}{measurement.idle_pct:>7.0f}"
        f"{measurement.other_cores:>7.2f}{measurement.new_processes:>6}{report.errors:>8,}",
        flush=True,
    )


def print_machine_note(measurements: list[Measurement]) -> None:
    """Say so when other work on the machine competed with the runs for CPU."""
    busiest = max(measurements, key=lambda m: m.other_cores)
    if busiest.other_cores > BUSY_MACHINE_CORES:
        print(
            f"Note: other work on this machine kept up to {busiest.other_cores:.2f} cores busy"
            f' during the runs (column "other"; {busiest.label}). Absolute rates are'
            " depressed and the ratios noisier than on an idle machine: rerun when it is quiet."
        )
        print()


def median(values: list[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")
