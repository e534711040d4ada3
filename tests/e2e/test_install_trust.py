"""App mode: an install is trusted only once the configured OAuth server has vouched for it, and
the tokens it brings are stored encrypted (issue 11)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlmodel import Session, select

from bridge.harness import wait_for
from bridge.install_checks import KEEP_FINISHED
from bridge.installs import MAX_WAITING
from bridge.models import InboxState, PendingInstall, PortalCredentials
from bridge.sandbox.bitrix import http_build_query
from bridge.tokens import reencrypt
from tests.e2e.conftest import Bridge, Deploy

App = Callable[..., Bridge]
TOKENS = ("access_token", "refresh_token", "application_token")


def install_body(bridge: Bridge, **auth: str) -> str:
    """An ONAPPINSTALL as Bitrix24 sends it; by default with tokens nobody issued."""
    fields = {
        "event": "ONAPPINSTALL",
        "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
        "auth": {
            "access_token": secrets.token_hex(16),
            "expires_in": "3600",
            "scope": "calendar,user,sonet_group,im",
            "domain": bridge.portal.domain,
            "server_endpoint": f"{bridge.sandbox.bitrix_url}/oauth/rest/",
            "status": "L",
            "client_endpoint": f"{bridge.sandbox.bitrix_url}/rest/",
            "member_id": bridge.portal.member_id,
            "refresh_token": secrets.token_hex(16),
            "application_token": secrets.token_hex(16),
            **auth,
        },
    }
    return http_build_query(fields)


def signed_event(bridge: Bridge, event: str, token: str, data: dict[str, str]) -> str:
    auth = {
        "domain": bridge.portal.domain,
        "client_endpoint": f"{bridge.sandbox.bitrix_url}/rest/",
        "server_endpoint": f"{bridge.sandbox.bitrix_url}/oauth/rest/",
        "member_id": bridge.portal.member_id,
        "application_token": token,
    }
    return http_build_query({"event": event, "data": data, "auth": auth})


def live_tokens(bridge: Bridge) -> dict[str, str | None]:
    with Session(bridge.engine) as session:
        row = session.exec(select(PortalCredentials)).one()
    assert bridge.cipher is not None
    names = ("access_token", "refresh_token", "application_token")
    return {name: bridge.cipher.open(getattr(row, name)) for name in names}


def bound(bridge: Bridge) -> int:
    return len(bridge.app_state()["apps"][0]["bindings"])


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def refusals(bridge: Bridge) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = bridge.status_json()["app"]["installs"]["refused"]
    return found


def refused_count(bridge: Bridge) -> float:
    labels = {"portal": bridge.portal.key, "outcome": "refused"}
    return REGISTRY.get_sample_value("bridge_install_verifications_total", labels) or 0.0


def test_a_forged_install_is_answered_but_trusted_for_nothing(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    genuine = bridge.install()
    wait_for(lambda: bound(bridge) == 7, 20, "the genuine install to be verified and bound")
    before = live_tokens(bridge)
    refused_before = refused_count(bridge)
    forged_token = secrets.token_hex(16)

    answer = bridge.post_event(install_body(bridge, application_token=forged_token))

    assert answer.status_code == 200 and answer.json()["status"] == "pending verification"
    wait_for(lambda: bool(refusals(bridge)), 20, "the verification to fail")
    [refusal] = refusals(bridge)
    assert "refused its refresh token (invalid_grant)" in refusal["problem"]
    assert "install of" in bridge.status_text() and "not verified" in bridge.status_text()
    assert refused_count(bridge) == refused_before + 1
    section = signed_event(bridge, "ONCALENDARSECTIONADD", forged_token, {"id": "1"})
    assert bridge.post_event(section).status_code == 401
    uninstall = signed_event(bridge, "ONAPPUNINSTALL", forged_token, {"CLEAN": "0"})
    assert bridge.post_event(uninstall).status_code == 401
    # The portal keeps its install and keeps working.
    assert live_tokens(bridge) == before
    assert before["application_token"] == genuine["application_token"]
    assert bridge.status_json()["app"]["installed"] is True
    bridge.add_section("company_calendar", 0, "Still mirrored")
    wait_for(lambda: summaries(bridge) == ["Still mirrored"], 20, "the calendar")
    installs = [r for r in bridge.wait_applied(2) if r.event == "ONAPPINSTALL"]
    assert [r.state for r in installs] == [InboxState.DONE, InboxState.IGNORED]
    assert "install not trusted" in (installs[1].outcome or "")


def test_a_genuine_install_authenticates_nothing_until_it_is_verified(make_bridge: App) -> None:
    bridge = make_bridge(app={}, worker=False)
    genuine = bridge.install()
    token = genuine["application_token"]
    waiting = bridge.status_json()["app"]["installs"]["waiting"]

    early = bridge.post_event(signed_event(bridge, "ONCALENDARSECTIONADD", token, {"id": "1"}))
    bridge.start_worker()
    wait_for(lambda: bound(bridge) == 7, 20, "the install to be verified and bound")
    bridge.add_section("company_calendar", 0, "After verification")

    assert waiting == 1  # stored, answered, not yet trusted
    assert early.status_code == 401  # not yet verified: its token proved nothing
    wait_for(lambda: summaries(bridge) == ["After verification"], 20, "the calendar")
    assert live_tokens(bridge)["application_token"] == token
    assert bridge.status_json()["app"]["installs"] == {"waiting": 0, "refused": []}


def test_a_replayed_install_does_not_roll_back_the_tokens(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    genuine = bridge.install()
    wait_for(lambda: bound(bridge) == 7, 20, "the install to be verified and bound")
    # The access token expires and the bridge refreshes: the refresh token rotates again.
    bridge.bitrix.expire_tokens(bridge.member_id)
    bridge.add_section("company_calendar", 0, "Before the replay")
    wait_for(lambda: summaries(bridge) == ["Before the replay"], 20, "the first calendar")
    current = live_tokens(bridge)
    assert current["refresh_token"] == bridge.app_state()["apps"][0]["refresh_token"]

    replay = install_body(
        bridge,
        **{name: genuine[name] for name in ("access_token", "refresh_token", "application_token")},
    )
    answer = bridge.post_event(replay)

    assert answer.status_code == 200
    wait_for(lambda: bool(refusals(bridge)), 20, "the replay's verification to fail")
    assert "invalid_grant" in refusals(bridge)[0]["problem"]
    assert live_tokens(bridge) == current
    bridge.add_section("company_calendar", 0, "After the replay")
    wait_for(
        lambda: summaries(bridge) == ["After the replay", "Before the replay"], 20, "the calendar"
    )


def test_a_flood_of_forged_installs_is_bounded_and_cannot_push_out_a_genuine_one(
    make_bridge: App,
) -> None:
    bridge = make_bridge(app={}, worker=False)
    bridge.install()  # waits, unverified, first in line
    answers = [bridge.post_event(install_body(bridge)).status_code for _ in range(MAX_WAITING + 5)]

    assert answers.count(200) == MAX_WAITING - 1
    assert answers.count(429) == 6
    verdicts = bridge.verify_installs()
    assert [verdict.verified for verdict in verdicts] == [True] + [False] * (MAX_WAITING - 1)
    with Session(bridge.engine) as session:
        kept = session.exec(select(PendingInstall)).all()
    assert len(kept) <= KEEP_FINISHED + 1 and all(row.refresh_token is None for row in kept)
    bridge.start_worker()
    wait_for(lambda: bound(bridge) == 7, 20, "the genuine install to be bound")
    bridge.add_section("company_calendar", 0, "Genuine")
    wait_for(lambda: summaries(bridge) == ["Genuine"], 20, "the calendar")


def test_tokens_in_the_database_are_not_readable_in_plaintext(make_bridge: App) -> None:
    bridge = make_bridge(app={}, worker=False)
    genuine = bridge.install()
    assert [verdict.verified for verdict in bridge.verify_installs()] == [True]
    waiting = {name: secrets.token_hex(16) for name in TOKENS}
    assert bridge.post_event(install_body(bridge, **waiting)).status_code == 200
    plaintext = {
        *(str(value) for value in live_tokens(bridge).values()),
        *(genuine[name] for name in TOKENS),
        *waiting.values(),
    }

    with bridge.engine.connect() as connection:
        [live] = connection.execute(text(f"SELECT {', '.join(TOKENS)} FROM portal_credentials"))
        [pending] = connection.execute(
            text(f"SELECT {', '.join(TOKENS)} FROM pending_install WHERE verified_at IS NULL")
        )
    stored = [*live, *pending]

    assert all(stored)
    dump = " ".join(stored)
    assert not [token for token in plaintext if token in dump]
    assert bridge.cipher is not None
    assert [bridge.cipher.open(value) for value in pending] == list(waiting.values())


def test_plaintext_tokens_from_an_earlier_version_are_read_and_then_encrypted(
    make_bridge: App,
) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: bound(bridge) == 7, 20, "the install to be verified and bound")
    current = live_tokens(bridge)
    with Session(bridge.engine) as session:  # as a version before encryption left it
        row = session.exec(select(PortalCredentials)).one()
        row.access_token = current["access_token"]
        row.refresh_token = current["refresh_token"]
        row.application_token = current["application_token"]
        session.add(row)
        session.commit()
    token = str(current["application_token"])

    accepted = bridge.post_event(signed_event(bridge, "ONCALENDARSECTIONADD", token, {"id": "1"}))
    assert bridge.cipher is not None
    done = reencrypt(bridge.engine, bridge.cipher)

    assert accepted.status_code == 200
    assert (done.rows, done.unreadable) == (1, 0)
    with Session(bridge.engine) as session:
        row = session.exec(select(PortalCredentials)).one()
    assert row.refresh_token != current["refresh_token"]
    assert live_tokens(bridge) == current
    assert reencrypt(bridge.engine, bridge.cipher).rows == 0


APP_CONFIG = {
    "client_id": "app.0001",
    "client_secret": "${ACME_CLIENT_SECRET}",
}


def test_app_mode_without_a_key_refuses_to_start_naming_the_variable(deploy: Deploy) -> None:
    deployment = deploy()
    path = Path(deployment.env["BRIDGE_CONFIG"])
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    portal = config["portals"][0]
    portal.pop("application_token")
    portal["bitrix"] = {"oauth": APP_CONFIG}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    deployment.env["ACME_CLIENT_SECRET"] = "s" * 32
    deployment.env.pop("BRIDGE_TOKEN_KEYS")

    refused = {command: deployment.run(command) for command in ("serve", "worker", "sync")}
    deployment.env["BRIDGE_TOKEN_KEYS"] = "not-a-key"
    bad_key = deployment.run("worker")

    for command, result in refused.items():
        assert result.returncode == 2, (command, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "BRIDGE_TOKEN_KEYS is not set" in line, (command, line)
    assert bad_key.returncode == 2
    assert "BRIDGE_TOKEN_KEYS: key 1 is not a Fernet key" in bad_key.stderr
    assert "not-a-key" not in bad_key.stderr
