"""The Procfile's processes as real OS processes: release, web and worker, configured by YAML."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bridge.demo import Sandbox, demo_portal

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def deployment(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A portals.yaml whose secrets live only in the environment, as in production."""
    portal = demo_portal(sandbox, key="acme", subject=f"procs-{uuid.uuid4().hex[:8]}@acme.example")
    config = {
        "portals": [
            {
                "key": portal.key,
                "member_id": portal.member_id,
                "domain": portal.domain,
                "application_token": "${ACME_APPLICATION_TOKEN}",
                "bitrix": {"webhook_url": "${ACME_BITRIX_WEBHOOK}"},
                "google": {
                    "service_account": "${GOOGLE_SERVICE_ACCOUNT}",
                    "subject": portal.google.subject,
                    "api_endpoint": portal.google.api_endpoint,
                    "time_zone": "Asia/Tokyo",
                },
                "mirror": {"company": True, "resources": False, "groups": [], "name": "BX: {name}"},
            }
        ]
    }
    path = tmp_path / "portals.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "BRIDGE_CONFIG": str(path),
        "PORT": str(free_port()),
        "ACME_APPLICATION_TOKEN": portal.application_token,
        "ACME_BITRIX_WEBHOOK": portal.bitrix.webhook_url,
        "GOOGLE_SERVICE_ACCOUNT": portal.google.service_account,
        "MEMBER_ID": portal.member_id,
        "SUBJECT": portal.google.subject,
    }
    yield env


def start(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_release_web_and_worker_processes_mirror_a_section(
    sandbox: Sandbox, deployment: dict[str, str], database_url: str
) -> None:
    env = deployment
    release = subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert release.returncode == 0, release.stderr
    web, worker = start("serve", env), start("worker", env)
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "web process did not come up"
            time.sleep(0.1)
        with httpx.Client(timeout=10) as http:
            http.post(
                f"{sandbox.bitrix_url}/_control/portals/{env['MEMBER_ID']}/outgoing-webhooks",
                json={
                    "handler": f"{base}/bitrix/events",
                    "events": ["ONCALENDARSECTIONADD"],
                    "application_token": env["ACME_APPLICATION_TOKEN"],
                },
            ).raise_for_status()
            http.post(
                f"{sandbox.bitrix_url}/_control/portals/{env['MEMBER_ID']}/sections",
                json={"type": "company_calendar", "owner_id": 0, "name": "Town hall"},
            ).raise_for_status()
            deadline = time.monotonic() + 20
            while True:
                calendars = http.get(
                    f"{sandbox.google_url}/_control/calendars",
                    params={"owner": env["SUBJECT"]},
                ).json()["calendars"]
                if calendars or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        assert [(c["summary"], c["timeZone"]) for c in calendars] == [
            ("BX: Town hall", "Asia/Tokyo")
        ]
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30)[0] for process in (web, worker)]
    # uvicorn re-raises SIGTERM once it has shut down gracefully, so the web exit is by signal.
    assert web.returncode in (0, -signal.SIGTERM), outputs[0]
    assert "Finished server process" in outputs[0]
    assert worker.returncode == 0, outputs[1]
    for output in outputs:
        assert env["ACME_APPLICATION_TOKEN"] not in output
        assert env["ACME_BITRIX_WEBHOOK"].split("/rest/")[1] not in output
        assert "Traceback" not in output
