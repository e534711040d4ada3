"""The portals file: secrets from the environment, and one-line errors naming portal and key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import ConfigError, Settings, load_portals, normalize_database_url

ROOT = Path(__file__).resolve().parent.parent
KEY = json.dumps(
    {
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": "-----BEGIN",
        "token_uri": "http://127.0.0.1:1/token",
    }
)
ENV = {"ACME_TOKEN": "a" * 32, "ACME_HOOK": "https://acme.bitrix24.com/rest/1/abc123/", "GSA": KEY}


def portal(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": "acme",
        "member_id": "a223c6b3710f85df22e9377d6c4f7553",
        "domain": "acme.bitrix24.com",
        "application_token": "${ACME_TOKEN}",
        "bitrix": {"webhook_url": "${ACME_HOOK}"},
        "google": {
            "service_account": "${GSA}",
            "subject": "calendars@acme.com",
            "time_zone": "Europe/Berlin",
        },
        "mirror": {
            "company": True,
            "resources": True,
            "groups": [12, 15],
            "users": [],
            "name": "{name}",
        },
    }
    base.update(overrides)
    return base


def write(tmp_path: Path, *portals: dict[str, Any]) -> Path:
    path = tmp_path / "portals.yaml"
    path.write_text(yaml.safe_dump({"portals": list(portals)}), encoding="utf-8")
    return path


def test_a_valid_file_resolves_secrets(tmp_path: Path) -> None:
    [acme] = load_portals(write(tmp_path, portal()), ENV)

    assert acme.application_token == "a" * 32
    assert acme.bitrix.webhook_url == ENV["ACME_HOOK"]
    assert acme.google.service_account_info()["client_email"] == "sa@p.iam.gserviceaccount.com"
    assert acme.google.api_endpoint == "https://www.googleapis.com/calendar/v3/"
    assert acme.mirror.groups == [12, 15]
    assert acme.mirror.on_delete == "delete"


def test_the_example_file_documents_a_valid_config() -> None:
    env = {
        "ACME_APPLICATION_TOKEN": "t" * 32,
        "ACME_BITRIX_WEBHOOK": ENV["ACME_HOOK"],
        "GOOGLE_SERVICE_ACCOUNT": KEY,
        "ACME_ALERT_WEBHOOK": "https://hooks.example/T0/B0/x",
    }
    portals = load_portals(ROOT / "config" / "portals.example.yaml", env)
    assert [p.key for p in portals] == ["acme"]
    entries = portals[0].mirror.entries
    assert (entries.enabled, entries.past_days, entries.future_days) == (True, 30, 365)
    assert (entries.privacy, entries.attendees) == ("respect_private", "none")


def test_entries_default_to_on_private_as_busy_and_nobody_invited(tmp_path: Path) -> None:
    (acme,) = load_portals(write(tmp_path, portal()), ENV)
    entries = acme.mirror.entries
    assert entries.enabled and entries.privacy == "respect_private"
    assert entries.attendees == "none" and not entries.reminders and entries.link_back


@pytest.mark.parametrize(
    ("change", "env", "expected"),
    [
        (
            {},
            {k: v for k, v in ENV.items() if k != "ACME_TOKEN"},
            "portal acme, key application_token: environment variable ACME_TOKEN is not set",
        ),
        ({"colour": "red"}, ENV, "portal acme, key colour: unknown key"),
        ({"mirror": {"groups": "some"}}, ENV, "portal acme, key mirror.groups"),
        ({"mirror": {"on_delete": "shred"}}, ENV, "portal acme, key mirror.on_delete"),
        ({"mirror": {"name": "{title}"}}, ENV, "portal acme, key mirror.name"),
        (
            {"mirror": {"entries": {"privacy": "secret"}}},
            ENV,
            "portal acme, key mirror.entries.privacy",
        ),
        (
            {"mirror": {"entries": {"past_days": -1}}},
            ENV,
            "portal acme, key mirror.entries.past_days",
        ),
        ({"mirror": {"entries": {"invite": True}}}, ENV, "key mirror.entries.invite: unknown key"),
        (
            {"google": {"service_account": "${GSA}", "subject": "nobody"}},
            ENV,
            "portal acme, key google.subject",
        ),
        (
            {
                "google": {
                    "service_account": "${GSA}",
                    "subject": "a@b.c",
                    "time_zone": "Mars/Olympus",
                }
            },
            ENV,
            "portal acme, key google.time_zone",
        ),
        (
            {"google": {"service_account": "not json", "subject": "a@b.c"}},
            ENV,
            "portal acme, key google.service_account",
        ),
        (
            {"bitrix": {"webhook_url": "https://acme.bitrix24.com/api/"}},
            ENV,
            "portal acme, key bitrix.webhook_url",
        ),
        ({"key": "Bad Key!"}, ENV, "key key"),
        ({"domain": None}, ENV, "portal acme, key domain"),
    ],
)
def test_a_bad_value_names_the_portal_and_key(
    tmp_path: Path, change: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_portals(write(tmp_path, portal(**change)), env)

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert ENV["ACME_TOKEN"] not in message and "abc123" not in message


def test_two_portals_with_one_member_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"member_id .* is used twice"):
        load_portals(write(tmp_path, portal(), portal(key="beta")), ENV)


def test_heroku_database_urls_get_a_driver() -> None:
    assert normalize_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert (
        Settings.from_env({"DATABASE_URL": "postgres://h/d"}).database_url
        == "postgresql+psycopg://h/d"
    )
    assert Settings.from_env({}).database_url == "sqlite:///bridge.db"


def test_a_bad_config_stops_start_up_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, portal(colour="red"))

    done = subprocess.run(
        [sys.executable, "-m", "bridge", "serve"],
        env={"BRIDGE_CONFIG": str(path), "PATH": "", **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"bridge: config error: {path}: portal acme, key colour: unknown key"
    )
