"""Tells gunicorn's master that this worker is alive while one long response streams.

gunicorn's sync worker reports in only between requests, and the master kills a worker
that has not reported for `--timeout` seconds, so a CSV export streaming for minutes would
be cut off mid-file. gunicorn.conf.py's `post_fork` hook remembers the worker here, and a
long response calls `beat()` as it goes; it then answers to its own time limit instead.
"""

# The gunicorn worker this process runs as; None under the Flask dev server and in tests.
_worker = None


def remember(worker) -> None:
    """Keep the gunicorn worker this process runs as (called by the post_fork hook)."""
    global _worker
    _worker = worker


def beat() -> None:
    """Tell gunicorn's master that this worker is alive; nothing happens outside gunicorn.

    One `os.utime` on the worker's heartbeat file: cheap enough to call once per chunk.
    """
    if _worker is not None:
        _worker.notify()
