"""The Procfile's processes as real OS processes: crashes, restarts and shutdowns lose nothing."""

from __future__ import annotations

import signal
from pathlib import Path

from bridge.deployment import settled
from bridge.harness import wait_for
from bridge.models import InboxState
from tests.e2e.conftest import Deploy

CALENDARS = "/calendar/v3/calendars"


def test_release_web_and_worker_processes_mirror_a_section(deploy: Deploy) -> None:
    deployment = deploy()
    web, worker = deployment.start_web(), deployment.start("worker")

    deployment.add_section("Town hall")
    wait_for(lambda: bool(deployment.calendars()), 20, "the calendar")

    assert [(c["summary"], c["timeZone"]) for c in deployment.calendars()] == [
        ("BX: Town hall", "Asia/Tokyo")
    ]
    web_code, web_output, _ = deployment.stop(web)
    worker_code, worker_output, _ = deployment.stop(worker)
    # uvicorn re-raises SIGTERM once it has shut down gracefully, so the web exit is by signal.
    assert web_code in (0, -signal.SIGTERM) and "Finished server process" in web_output
    assert worker_code == 0, worker_output
    for output in (web_output, worker_output):
        assert deployment.portal.application_token not in output
        assert deployment.portal.bitrix.webhook_url.split("/rest/")[1] not in output
        assert "Traceback" not in output


def test_events_accepted_while_no_worker_runs_are_applied_later(deploy: Deploy) -> None:
    deployment = deploy()
    deployment.start_web()
    for name in ("One", "Two", "Three"):
        deployment.add_section(name)
    assert [row.state for row in deployment.inbox()] == [InboxState.PENDING] * 3

    deployment.start("worker")
    wait_for(settled(deployment, 3), 30, "the worker")

    assert sorted(c["summary"] for c in deployment.calendars()) == [
        "BX: One",
        "BX: Three",
        "BX: Two",
    ]


def test_a_worker_killed_while_creating_leaves_one_calendar_after_restart(deploy: Deploy) -> None:
    deployment = deploy(google={"timeout_s": 60}, lease_seconds=2)
    deployment.google_fault(
        method="POST", path=CALENDARS, count=1, action="commit_then_stall", seconds=30
    )
    deployment.start_web()
    worker = deployment.start("worker")
    deployment.add_section("Survivor")
    wait_for(lambda: bool(deployment.calendars()), 20, "the insert to reach Google")

    worker.kill()
    assert [row.state for row in deployment.inbox()] == [InboxState.WORKING]
    deployment.start("worker")
    wait_for(settled(deployment, 1), 30, "the restarted worker")

    [calendar] = deployment.calendars()
    assert calendar["summary"] == "BX: Survivor"
    [row] = deployment.inbox()
    assert row.state == InboxState.DONE
    # The restarted worker adopted the calendar by its marker (through the event or through the
    # reconciliation it runs at start, whichever came first) instead of inserting it again.
    inserts = [
        r for r in deployment.google_requests() if r["method"] == "POST" and r["path"] == CALENDARS
    ]
    assert len(inserts) == 1


def test_sigterm_mid_work_exits_0_in_time_and_loses_nothing(deploy: Deploy) -> None:
    deployment = deploy(google={"timeout_s": 60})
    deployment.google_fault(
        method="POST", path=CALENDARS, count=1, action="commit_then_stall", seconds=3
    )
    deployment.start_web()
    worker = deployment.start("worker")
    for name in ("First", "Second", "Third"):
        deployment.add_section(name)
    wait_for(lambda: bool(deployment.calendars()), 20, "the first insert")

    code, output, took = deployment.stop(worker)

    assert code == 0, output
    assert took < 25
    assert not any(row.state == InboxState.WORKING for row in deployment.inbox())
    deployment.start("worker")
    wait_for(settled(deployment, 3), 30, "the next worker")
    assert sorted(c["summary"] for c in deployment.calendars()) == [
        "BX: First",
        "BX: Second",
        "BX: Third",
    ]


def test_a_second_worker_on_sqlite_is_refused(deploy: Deploy, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        assert deploy().run("worker", "--help").returncode == 0  # PostgreSQL takes many workers
        return
    deployment = deploy()
    first = deployment.start("worker")
    wait_for(
        lambda: Path(database_url.removeprefix("sqlite:///") + ".worker-lock").exists(),
        20,
        "the lock",
    )

    second = deployment.run("worker")

    assert second.returncode == 2
    assert "another worker already runs" in second.stderr
    assert first.poll() is None


def test_status_shows_parked_work_and_replay_puts_it_back(deploy: Deploy) -> None:
    deployment = deploy()
    deployment.sandbox.bitrix.fault(
        member_id=deployment.portal.member_id,
        method="batch",
        count=1,
        kind="error",
        status=401,
        error="NO_AUTH_FOUND",
        description="Wrong authorization data",
    )
    deployment.start_web()
    deployment.add_section("Parked first")
    deployment.start("worker")  # drains the waiting event before its first reconciliation
    wait_for(settled(deployment, 1), 20, "the event to be parked")

    status = deployment.run("status")

    assert status.returncode == 0, status.stderr
    assert "acme (acme.bitrix24.com)" in status.stdout
    assert "1 parked" in status.stdout
    assert "NO_AUTH_FOUND" in status.stdout
    replayed = deployment.run("replay", "--portal", "acme")
    assert replayed.returncode == 0 and "1 parked event(s) put back" in replayed.stdout
    wait_for(lambda: bool(deployment.calendars()), 20, "the replayed event")
    assert [c["summary"] for c in deployment.calendars()] == ["BX: Parked first"]
    assert "0 parked" in deployment.run("status", "--portal", "acme").stdout
