"""Invitation tokens, OIDC codes and states never reach a log line, the access log included."""

import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.log_redaction import REDACTED, RedactSecrets, redact
from tests.conftest import CLIENT_ID, TEST_SECRET_KEY, free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "q8Yt3v_Zr2mW9xKp4LdN7sHc1aJf6uEb0oGi5TyRwQe"
SECRET_PATHS = [
    f"/invitations/{TOKEN}",
    "/auth/callback?code=sEcReTcOdE123&state=StAtEvAlUe456",
    "/auth/callback?state=StAtEvAlUe456&code=sEcReTcOdE123&iss=x",
]
SECRETS = (TOKEN, "sEcReTcOdE123", "StAtEvAlUe456")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'127.0.0.1 - - "GET /invitations/{TOKEN} HTTP/1.1" 200',
            f'127.0.0.1 - - "GET /invitations/{REDACTED} HTTP/1.1" 200',
        ),
        (
            "GET /auth/callback?code=abc123&state=xyz789&iss=https://idp",
            f"GET /auth/callback?code={REDACTED}&state={REDACTED}&iss=https://idp",
        ),
        (
            f'"https://links.acme.com/invitations/{TOKEN}" "Mozilla/5.0"',
            f'"https://links.acme.com/invitations/{REDACTED}" "Mozilla/5.0"',
        ),
        # A numeric invitation id (revoking one) is no secret and stays readable.
        (
            "POST /orgs/acme/invitations/12/revoke HTTP/1.1",
            "POST /orgs/acme/invitations/12/revoke HTTP/1.1",
        ),
    ],
)
def test_redact_replaces_tokens_codes_and_states(line, expected):
    assert redact(line) == expected


def test_the_filter_rewrites_a_record_with_arguments():
    record = logging.LogRecord(
        "gunicorn.access",
        logging.INFO,
        __file__,
        1,
        "%s %s",
        ("GET", f"/invitations/{TOKEN}"),
        None,
    )
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == f"GET /invitations/{REDACTED}"


def wait_for(url: str, process: subprocess.Popen) -> None:
    """Return once `url` answers; fail if the server exits or 20 s pass."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)  # polling a starting server, not synchronising test steps
    pytest.fail(f"server did not answer at {url}")


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's web command, with $PORT filled in and gunicorn run by this Python."""
    line = next(
        line.removeprefix("web: ")
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web: ")
    )
    words = shlex.split(
        line.replace("${PORT:-5000}", str(port)).replace("${WEB_CONCURRENCY:-2}", "1")
    )
    assert words[0] == "gunicorn"
    return [sys.executable, "-m", "gunicorn", *words[1:]]


@pytest.mark.parametrize("server", ["gunicorn", "flask run"])
def test_no_log_line_of_the_servers_holds_a_secret(tmp_path, database_url, idp, app, server):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "OIDC_ISSUER": idp.url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "SHORT_BASE_URL": "https://go.acme.test",
        "TRUSTED_HOSTS": "127.0.0.1",
    }
    if server == "gunicorn":
        command = procfile_web_command(port)
    else:
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)  # noqa: S603
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/healthz", process)
            for path in SECRET_PATHS:
                response = requests.get(
                    base + path,
                    headers={"Referer": base + SECRET_PATHS[0]},
                    allow_redirects=False,
                    timeout=10,
                )
                assert response.status_code in (302, 400, 404)
        finally:
            process.terminate()
            process.wait(20)
    logged = log_path.read_text()
    assert "/auth/callback?code=" in logged  # the requests were logged at all
    for secret in SECRETS:
        assert secret not in logged
