"""The web process exactly as the Procfile runs it: gunicorn, two sync workers and the click
shipper started by gunicorn.conf.py, under load, losing no click when a worker is killed
with SIGKILL or when the whole process gets SIGTERM (a deploy)."""

import contextlib
import http.client
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func

from app.extensions import db
from app.models import Click, Link
from app.services.click_spool import spool_directory, spool_files
from tests.click_factories import make_link
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
BOOTED = re.compile(r"Booting worker with pid: (\d+)")
ANSWERED = re.compile(r"^event=request .* worker=<(\d+)> ")


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's web command for this port, run from this virtualenv."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = line.removeprefix("web:").strip()
    command = command.replace("0.0.0.0:${PORT:-5000}", f"127.0.0.1:{port}")
    command = command.replace("${WEB_CONCURRENCY:-2}", "2")
    program, *arguments = shlex.split(command)
    return [str(Path(sys.executable).parent / program), *arguments]


class WebProcess:
    """gunicorn started from the Procfile line, with its output collected as it comes."""

    def __init__(self, app):
        self.port = free_port()
        config = app.config
        env = {
            **os.environ,
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "SECRET_KEY": config["SECRET_KEY"],
            "OIDC_ISSUER": config["OIDC_ISSUER"],
            "OIDC_CLIENT_ID": config["OIDC_CLIENT_ID"],
            "OIDC_CLIENT_SECRET": config["OIDC_CLIENT_SECRET"],
            "TRUSTED_HOSTS": "127.0.0.1",
            "CLICK_SPOOL_DIR": config["CLICK_SPOOL_DIR"],
        }
        self.process = subprocess.Popen(  # noqa: S603  (the Procfile's own command)
            procfile_web_command(self.port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group, so the test can stop every process it started.
            start_new_session=True,
        )
        self.workers: list[int] = []
        self.served_by: set[int] = set()
        self.output: list[str] = []
        self._news = threading.Condition()
        self._readers = [
            threading.Thread(target=self._collect, args=(stream,), daemon=True)
            for stream in (self.process.stderr, self.process.stdout)
        ]
        for reader in self._readers:
            reader.start()

    def stop_everything(self) -> None:
        """Kill gunicorn, its workers and its shipper, whatever state they are in."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        self.process.stdout.close()
        self.process.stderr.close()

    def _collect(self, stream) -> None:
        """Read gunicorn's log lines, noting each worker it boots and each that answers."""
        for line in stream:
            with self._news:
                self.output.append(line)
                if booted := BOOTED.search(line):
                    self.workers.append(int(booted.group(1)))
                if answered := ANSWERED.search(line):
                    self.served_by.add(int(answered.group(1)))
                self._news.notify_all()

    def wait_until(self, condition, what: str) -> None:
        """Block until `condition()` holds for what gunicorn logged."""
        with self._news:
            assert self._news.wait_for(condition, timeout=60), f"no {what}:\n" + "".join(
                self.output
            )

    def wait_for_workers(self, count: int) -> list[int]:
        """Block until gunicorn has booted `count` workers in all; return their pids."""
        self.wait_until(lambda: len(self.workers) >= count, f"{count} workers booted")
        return list(self.workers)

    def wait_for_answer_from(self, worker: int) -> None:
        """Block until the access log shows a request answered by this worker."""
        self.wait_until(lambda: worker in self.served_by, f"answer from worker {worker}")


@pytest.fixture
def web_process(app):
    web = WebProcess(app)
    yield web
    web.stop_everything()


class Visitors:
    """Threads following one short link until the server stops answering."""

    def __init__(self, port: int, slug: str, threads: int = 4):
        self.port, self.slug = port, slug
        self.statuses: Counter = Counter()
        self.errors = 0
        self._progress = threading.Condition()
        self._threads = [threading.Thread(target=self._visit) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _visit(self) -> None:
        """Follow the link over and over; stop once connections are refused."""
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("GET", f"/{self.slug}", headers={"User-Agent": "Mozilla/5.0"})
                status = connection.getresponse().status
            except ConnectionRefusedError:
                return
            except (ConnectionError, http.client.HTTPException):
                # Cut off mid-request (its worker was killed): the click may or may not
                # have been spooled, so it is counted apart.
                with self._progress:
                    self.errors += 1
                continue
            finally:
                connection.close()
            with self._progress:
                self.statuses[status] += 1
                self._progress.notify_all()

    def wait_for(self, answered: int) -> None:
        """Block until at least `answered` requests got an answer."""
        with self._progress:
            assert self._progress.wait_for(lambda: self.statuses.total() >= answered, timeout=60), (
                self.statuses
            )

    def join(self) -> None:
        for thread in self._threads:
            thread.join(60)


def test_no_click_is_lost_when_a_worker_is_killed_or_the_web_process_is_stopped(app, web_process):
    with app.app_context():
        link = make_link("busy")
        link_id = link.id
    web_process.wait_for_workers(2)
    visitors = Visitors(web_process.port, "busy")

    visitors.wait_for(150)
    os.kill(web_process.wait_for_workers(2)[0], signal.SIGKILL)
    replacement = web_process.wait_for_workers(3)[2]
    # Stopped while still booting, a worker would miss the signal and hold up the exit
    # until --graceful-timeout (a gunicorn race); a serving one stops at once.
    web_process.wait_for_answer_from(replacement)
    visitors.wait_for(300)
    web_process.process.send_signal(signal.SIGTERM)  # a deploy, while visitors keep coming
    assert web_process.process.wait(60) == 0
    visitors.join()

    redirected = visitors.statuses[302]
    assert set(visitors.statuses) == {302}
    assert redirected >= 300
    with app.app_context():
        rows = db.session.execute(
            db.select(func.count(Click.id)).filter_by(link_id=link_id)
        ).scalar_one()
        counted = db.session.get(Link, link_id).click_count
    # Every answered visit is stored once; a visit cut off by the kill may be too.
    assert redirected <= rows <= redirected + visitors.errors
    assert counted == rows
    assert spool_files(spool_directory(app)) == []
    assert any("click shipper started" in line for line in web_process.output)
