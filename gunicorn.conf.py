"""What the web process runs beside gunicorn's workers (the Procfile passes --config).

- The click shipper (`flask ship-clicks`) starts once the workers can serve and stops last:
  when gunicorn exits, after its workers have finished their requests and closed their
  spool files, the shipper stores what is left and ends (see app/services/click_shipping.py).
- Each worker reads the newest links into its cache before serving (LINK_CACHE_SIZE of
  them), and is remembered for app.worker_heartbeat, so a long CSV download can tell
  gunicorn it is alive instead of being killed at --timeout.
- The access log is one line of key=value pairs per request, with the worker's pid;
  app/log_redaction.py takes secrets out of it as out of every request log line.
"""

import gc
import os
import signal
import subprocess
import sys
import time

access_log_format = (
    'event=request request="%(r)s" status=%(s)s bytes=%(B)s ms=%(M)s worker=%(p)s agent="%(a)s"'
)

# How long gunicorn waits, after its workers stopped, for the shipper to store the rest.
SHIPPER_EXIT_SECONDS = 30

_shipper: subprocess.Popen | None = None


def when_ready(server) -> None:
    """Start the click shipper as a child of the gunicorn master."""
    global _shipper
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "ship-clicks"]
    # A fixed command: our interpreter and our own CLI, nothing from outside.
    _shipper = subprocess.Popen([*command, "--parent-pid", str(os.getpid())])  # noqa: S603
    server.log.info("click shipper started: pid %s", _shipper.pid)


def post_fork(server, worker) -> None:
    """Let the worker's app reach gunicorn's liveness signal during long responses."""
    from app import worker_heartbeat

    worker_heartbeat.remember(worker)


def post_worker_init(worker) -> None:
    """Read the newest links into the worker's cache before it takes its first visitor."""
    from app.services.link_cache import warm

    started = time.monotonic()
    count = warm(worker.wsgi)
    # What exists now (the app, its modules, the warm cache) lives as long as the worker:
    # left to the garbage collector, each full collection would walk all of it again.
    gc.freeze()
    worker.log.info(
        "event=link_cache_warmed links=%s seconds=%.2f", count, time.monotonic() - started
    )


def on_exit(server) -> None:
    """Once every worker is gone, let the shipper store what they left and wait for it."""
    if _shipper is None:
        return
    # A dyno's SIGTERM may have reached it already; a second one changes nothing.
    _shipper.send_signal(signal.SIGTERM)
    try:
        _shipper.wait(timeout=SHIPPER_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        server.log.error(
            "click shipper still running after %s s; stopping it", SHIPPER_EXIT_SECONDS
        )
        _shipper.kill()
