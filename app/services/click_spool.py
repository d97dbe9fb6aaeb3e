"""Per-worker spool files: where a redirect leaves its click for the shipper.

A click is one JSON line appended with a single `os.write` to a file only this process
writes. Once `write` returns, the line is in the kernel: it survives the worker being
stopped, recycled, killed with SIGKILL or by the OOM killer, and the shipper
(app/services/click_shipping.py) stores it within a second. Only the machine itself
dying loses what was written since the last shipment.

Each file is named `<host>-<pid>-<random>.spool`. The writer holds an exclusive `flock`
on it for as long as it may append; the shipper can take that lock only once the writer
has closed the file (it moved on to a new one, or its process ended), which is how the
shipper knows a file is final and may be deleted once stored. A file is created under a
temporary name, locked, and only then renamed into place, so the shipper never sees an
unlocked file that a writer is about to use.
"""

import fcntl
import json
import logging
import os
import secrets
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".spool"


class ClickSpool:
    """The click spool of this process in `directory`; safe to share between threads."""

    def __init__(self, directory: str | os.PathLike, *, max_file_bytes: int):
        """Spool into `directory`, starting a new file once one exceeds `max_file_bytes`."""
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self._fd: int | None = None
        self._pid: int | None = None
        self._written = 0
        self._lock = threading.Lock()

    def append(self, record: dict) -> None:
        """Write one click as a line of JSON; raises OSError when the disk refuses it."""
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        with self._lock:
            fd = self._file_for(len(line))
            written = os.write(fd, line)
            self._written += written
        if written != len(line):
            # The disk is full: the shipper skips the torn line, and later lines follow
            # on a fresh line of their own.
            raise OSError(f"spool write cut short: {written} of {len(line)} bytes")

    def close(self) -> None:
        """Close this process's file, making it final for the shipper."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _file_for(self, size: int) -> int:
        """This process's open spool file, opening a new one after a fork or when full."""
        if self._fd is not None:
            fits = self._written + size <= self.max_file_bytes or self._written == 0
            if self._pid == os.getpid() and fits:
                return self._fd
            # Closing a full file releases its lock: the shipper stores the rest and
            # deletes it. A forked child closes only its copy; the parent keeps the lock.
            os.close(self._fd)
            self._fd = None
        self._fd = _create_locked_file(self.directory)
        self._pid = os.getpid()
        self._written = 0
        return self._fd


def _create_locked_file(directory: Path) -> int:
    """Create, lock and publish a new spool file; return its descriptor."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    hidden = directory / f".{name}.new"
    fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(hidden, directory / f"{name}{SUFFIX}")
    log.info("event=click_spool_opened spool=%s%s", name, SUFFIX)
    return fd


def spool_directory(app) -> Path:
    """The app's spool directory: CLICK_SPOOL_DIR, or click-spool in the instance folder."""
    return Path(app.config.get("CLICK_SPOOL_DIR") or Path(app.instance_path) / "click-spool")


def is_final(path: Path) -> bool:
    """Tell whether no process may append to the spool file any more (its writer closed it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        # Closing also drops the lock if we took it.
        os.close(fd)
    return True


def spool_files(directory: Path) -> list[Path]:
    """The published spool files in `directory`, oldest name first."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.name.endswith(SUFFIX))
