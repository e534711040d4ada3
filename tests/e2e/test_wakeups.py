"""An idle worker is woken by new work, not found by its poll: with the fallback poll set to a
minute (BRIDGE_POLL_SECONDS), events are still applied within seconds. On PostgreSQL that is the
LISTEN/NOTIFY wake-up (also after its connection was killed); on SQLite, the 50 ms poll."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.deployment import BridgeProcess, SandboxDeployment, settled
from bridge.harness import Sandbox, wait_for
from bridge.models import InboxState
from tests.conftest import fresh_schema, schema_url
from tests.e2e.conftest import Deploy, clear_faults

CALENDARS = "/calendar/v3/calendars"
SLOW_POLL = "60"  # seconds: far beyond every bound below, so the poll cannot explain a pass
PROMPTLY = 10.0


def _summaries(deployment: SandboxDeployment) -> list[str]:
    return sorted(c["summary"] for c in deployment.calendars())


def _mirror_promptly(deployment: SandboxDeployment, *names: str) -> None:
    """Each section in turn, after the previous one was applied: the worker is idle each time
    (but for the pass right after one that found work, a few milliseconds)."""
    before = _summaries(deployment)
    for index, name in enumerate(names):
        deployment.add_section(name)
        expected = sorted([*before, *(f"BX: {n}" for n in names[: index + 1])])
        wait_for(
            lambda want=expected: _summaries(deployment) == want, PROMPTLY, f"calendar {name!r}"
        )


def test_an_event_reaches_an_idle_worker_long_before_the_fallback_poll(
    deploy: Deploy, database_url: str
) -> None:
    deployment = deploy()
    deployment.env["BRIDGE_POLL_SECONDS"] = SLOW_POLL
    deployment.start_web()
    worker = deployment.start("worker")
    deployment.add_section("Start-up")  # found by the worker's first pass, whenever it starts
    wait_for(lambda: bool(deployment.calendars()), 30, "the worker")
    if database_url.startswith("postgresql"):
        wait_for(lambda: _listener(deployment, worker) is not None, 20, "the listener")

    _mirror_promptly(deployment, "First", "Second", "Third")

    code, output, _ = deployment.stop(worker)
    assert code == 0, output


def test_a_backoff_that_ends_is_retried_without_waiting_for_the_poll(deploy: Deploy) -> None:
    deployment = deploy()
    deployment.env["BRIDGE_POLL_SECONDS"] = SLOW_POLL
    # An insert goes on the wire once, so its 500 reschedules the row (after about a second).
    deployment.google_fault(method="POST", path=CALENDARS, count=1, action="error", status=500)
    deployment.start_web()
    deployment.start("worker")

    deployment.add_section("Late")
    wait_for(settled(deployment, 1), PROMPTLY, "the retried insert")

    assert _summaries(deployment) == ["BX: Late"]
    [row] = deployment.inbox()
    assert (row.state, row.attempts) == (InboxState.DONE, 1)


@pytest.fixture
def postgres_deployment(sandbox: Sandbox, tmp_path: Path) -> Iterator[SandboxDeployment]:
    with fresh_schema("wake") as schema:
        deployment = SandboxDeployment(sandbox, schema_url(schema), tmp_path)
        try:
            assert deployment.run("migrate").returncode == 0
            yield deployment
        finally:
            deployment.close()
            clear_faults(sandbox)


def _listener(deployment: SandboxDeployment, worker: BridgeProcess) -> int | None:
    """The backend pid of the worker's listening connection, once it has run LISTEN."""
    with deployment.engine.connect() as connection:
        pid = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND query = 'LISTEN bridge_inbox'"
            ),
            {"name": f"bridge-wakeups {worker.pid}"},
        ).scalar_one_or_none()
    return None if pid is None else int(pid)


def test_the_listener_reconnects_after_its_connection_is_killed(
    postgres_deployment: SandboxDeployment,
) -> None:
    deployment = postgres_deployment
    deployment.env["BRIDGE_POLL_SECONDS"] = SLOW_POLL
    deployment.start_web()
    worker = deployment.start("worker")
    wait_for(lambda: _listener(deployment, worker) is not None, 20, "the listener")
    first = _listener(deployment, worker)
    _mirror_promptly(deployment, "Before")

    with deployment.engine.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    wait_for(
        lambda: _listener(deployment, worker) not in (None, first), 20, "a new listening connection"
    )
    deployment.add_section("After")
    wait_for(
        lambda: _summaries(deployment) == ["BX: After", "BX: Before"], PROMPTLY, "calendar 'After'"
    )
    deployment.add_section("Later")
    wait_for(lambda: len(deployment.calendars()) == 3, PROMPTLY, "calendar 'Later'")

    code, output, _ = deployment.stop(worker)
    assert code == 0, output
    assert "wake-up listener disconnected" in output
    assert "Traceback" not in output
