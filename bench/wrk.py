"""Running wrk against a local server and reading its report.

Every run uses bench/slugs.lua, the same headers and the same thread count, so the only
difference between two runs is the server and the slug file.
"""

import re
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().with_name("slugs.lua")
# What a browser following a shared link sends: Linkdeck parses both for each click.
HEADERS = (
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Referer: https://news.example.org/today",
)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class WrkOptions:
    """How hard and how long to load a server."""

    threads: int
    connections: int
    seconds: float


@dataclass(frozen=True)
class WrkReport:
    """What one wrk run measured, plus the CPU wrk itself used."""

    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    redirects_302: int | None
    cpu_seconds: float
    text: str


def start(port: int, slug_file: Path, options: WrkOptions, *, count_redirects: bool = False):
    """Start wrk against 127.0.0.1:`port` with random slugs from `slug_file`; return the
    process and the CPU that this process's reaped children had used until now."""
    argv = [
        "wrk",
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{options.seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        *(word for header in HEADERS for word in ("-H", header)),
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        str(slug_file),
        *(["count"] if count_redirects else []),
    ]
    before = _children_cpu()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, before


def finish(started) -> WrkReport:
    """Wait for a wrk started by `start` and read its report."""
    process, cpu_before = started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.strip() or stdout}")
    return parse(stdout, cpu_seconds=_children_cpu() - cpu_before)


def run(port: int, slug_file: Path, options: WrkOptions) -> WrkReport:
    """Load the server for `options.seconds` and return what wrk measured."""
    return finish(start(port, slug_file, options))


def parse(text: str, *, cpu_seconds: float = 0.0) -> WrkReport:
    """Read requests, rate, p50, p99, errors and (with `count`) the 302s from wrk's output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if done is None or rate is None:
        raise RuntimeError(f"could not read wrk's report:\n{text}")
    percentiles = {int(p): float(v) * _UNITS[unit] for p, v, unit in _PERCENTILE.findall(text)}
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    redirects = re.search(r"^redirects_302 (\d+)$", text, re.MULTILINE)
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    errors += int(non_3xx.group(1)) if non_3xx else 0
    return WrkReport(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1000,
        rate=float(rate.group(1)),
        p50_ms=percentiles.get(50, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        errors=errors,
        redirects_302=int(redirects.group(1)) if redirects else None,
        cpu_seconds=cpu_seconds,
        text=text,
    )


def _children_cpu() -> float:
    """User and system CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
