"""What an outsider can do to /metrics and what reaches the logs: the page stays the same size
whatever is sent, it can be closed with a bearer token, and no secret survives in a traceback."""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.harness import ROOT, free_port, wait_for
from tests.e2e.conftest import Bridge, Deploy

TOKEN = "scrape-me-" + "x7Kq2" * 4

Series = frozenset[tuple[str, tuple[tuple[str, str], ...]]]


def series(body: str) -> Series:
    return frozenset(
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    )


def made_up_deliveries(bridge: Bridge, count: int, rng: random.Random) -> list[str]:
    """`count` deliveries no genuine portal would send: unknown portals, invented event names,
    random member ids, wrong tokens (and, from the real portal, invented events). Returns every
    invented value."""
    portal = bridge.portal
    invented: list[str] = []

    def word(size: int) -> str:
        value = "".join(rng.choices(string.ascii_uppercase + string.digits, k=size))
        invented.append(value)
        return value

    statuses = set()
    for index in range(count):
        kind = index % 5  # 0, 1: unknown portal; 2, 3: wrong token; 4: an invented event
        member_id, token = portal.member_id, portal.application_token or ""
        event = {1: "ONAPPINSTALL", 2: "ONCALENDARSECTIONADD"}.get(kind) or f"ON{word(12)}"
        if kind in (0, 1):
            member_id = word(32).lower()
        if kind in (2, 3):
            token = word(24)
        body = urlencode(
            {
                "event": event,
                "data[id]": str(rng.randint(1, 10**9)),
                "auth[member_id]": member_id,
                "auth[domain]": portal.domain,
                "auth[application_token]": token,
            }
        )
        statuses.add(bridge.post_event(body).status_code)
    assert statuses <= {200, 401, 403}, statuses  # refused or accepted, never a failure
    return invented


def test_metrics_stay_the_same_size_whatever_is_sent(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(worker=False)
    rng = random.Random(11)
    made_up_deliveries(bridge, 40, rng)  # every kind of refusal has been counted once
    before = bridge.http.get(f"{bridge.web_url}/metrics").text

    invented = made_up_deliveries(bridge, 1000, rng)

    after = bridge.http.get(f"{bridge.web_url}/metrics").text
    assert series(after) == series(before)  # no new label value, whatever was sent
    assert len(after) - len(before) < 1024  # only counters grew (a few digits each)
    labels = {value for _, pairs in series(after) for _, value in pairs}
    assert not labels & set(invented)
    received = [
        dict(pairs) for name, pairs in series(after) if name == "bridge_events_received_total"
    ]
    assert {r["portal"] for r in received} <= {bridge.portal.key, "unknown"}
    assert {r["event"] for r in received} <= {
        "ONCALENDARSECTIONADD",
        "ONCALENDARSECTIONUPDATE",
        "ONCALENDARSECTIONDELETE",
        "ONCALENDARENTRYADD",
        "ONCALENDARENTRYUPDATE",
        "ONCALENDARENTRYDELETE",
        "ONAPPINSTALL",
        "ONAPPUNINSTALL",
        "ONOFFLINEEVENT",
        "other",
    }
    assert {"other", "ONCALENDARSECTIONADD"} <= {r["event"] for r in received}


def test_metrics_need_the_bearer_token_on_the_web_and_the_worker(deploy: Deploy) -> None:
    deployment = deploy()
    worker_port = free_port()
    deployment.env.update(METRICS_TOKEN=TOKEN, METRICS_PORT=str(worker_port))
    web, worker = deployment.start_web(), deployment.start("worker")
    pages = {
        "web": f"{deployment.web_url}/metrics",
        "worker": f"http://127.0.0.1:{worker_port}/metrics",
    }

    def listening() -> bool:
        try:
            httpx.get(pages["worker"], timeout=1)
            return True
        except httpx.TransportError:
            return False

    wait_for(listening, 30, "the worker's metrics port")
    for where, url in pages.items():
        for refused in ({}, {"Authorization": "Bearer " + TOKEN[:-1]}, {"Authorization": TOKEN}):
            answer = httpx.get(url, headers=refused, timeout=10)
            assert answer.status_code == 401, (where, refused, answer.status_code, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "bridge_" not in answer.text
        allowed = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert allowed.status_code == 200, where
        names = {family.name for family in text_string_to_metric_families(allowed.text)}
        assert "bridge_upstream_requests" in names, where

    outputs = [deployment.stop(process)[1] for process in (web, worker)]
    assert not any(TOKEN in output for output in outputs)


def test_a_short_metrics_token_is_refused_at_start(deploy: Deploy) -> None:
    deployment = deploy()
    deployment.env["METRICS_TOKEN"] = "short"
    refused = deployment.run("worker")
    assert refused.returncode == 2
    assert "METRICS_TOKEN must be at least 16" in refused.stderr
    assert "short" not in refused.stderr


LOGGING_RUN = """
import logging

from bridge.bitrix import BitrixClient, BitrixError
from bridge.cli.loading import load_config
from bridge.logs import configure_logging

configure_logging()  # as `python -m bridge …` does, then the config's secrets
settings, [portal] = load_config()
log = logging.getLogger("bridge.worker")
hook = portal.bitrix.webhook_url
client = BitrixClient(hook, attempts=1)
try:
    try:
        client.call("calendar.section.get", {{"type": "company_calendar", "ownerId": 0}})
    except BitrixError as exc:
        exc.add_note(f"calling {{hook}} for {{portal.key}}")
        raise RuntimeError(f"giving up on {{hook}}") from exc
except RuntimeError:
    log.exception("a pass failed", extra={{"portal": portal.key, "outcome": f"at {{hook}}"}})
log.warning("where the stack passes", stack_info=True)  # {hook}
raise LookupError(f"unhandled {{hook}} and {other}calendar.get")
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_in_tracebacks_stacks_and_notes_are_redacted(
    deploy: Deploy, tmp_path: Path, log_format: str
) -> None:
    deployment = deploy()
    hook = deployment.portal.bitrix.webhook_url
    other = hook.replace("/rest/1/", "/rest/7/").replace(
        hook.rstrip("/").rsplit("/", 1)[-1], "0therc0deNotConfigured"
    )
    deployment.sandbox.bitrix.fault(
        member_id=deployment.portal.member_id,
        method="calendar.section.get",
        status=400,
        error="ERROR_CORE",
        description=f"request to {hook}calendar.section.get failed",
    )
    script = tmp_path / "run.py"
    script.write_text(LOGGING_RUN.format(hook=hook, other=other), encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script)],
        env={**deployment.env, "LOG_FORMAT": log_format, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    code = hook.rstrip("/").rsplit("/", 1)[-1]
    assert code not in output and "0therc0deNotConfigured" not in output
    # Everything was logged, with the secrets replaced.
    for seen in (
        "ERROR_CORE request to",  # the Bitrix24 client's error, chained
        "giving up on",
        "calling ",  # the exception's note
        "where the stack passes",
        "LookupError: unhandled",  # the uncaught one, through the same handler
    ):
        assert seen in output, (seen, output)
    assert "giving up on ***" in output  # the configured URL, whole
    assert "/rest/7/***/calendar.get" in output  # a webhook code the config does not name
    if log_format == "json":
        records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
        failed = next(r for r in records if r["message"] == "a pass failed")
        assert "***" in failed["error"] and "***" in failed["outcome"]
        stacked = next(r for r in records if r["message"] == "where the stack passes")
        assert "***" in stacked["stack"]
        uncaught = next(r for r in records if r["message"] == "uncaught exception")
        assert uncaught["level"] == "critical" and "LookupError" in uncaught["error"]
