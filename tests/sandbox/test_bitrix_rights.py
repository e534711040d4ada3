"""The Bitrix24 emulator's webhook rights: listings filtered by the caller's rights, scopes."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.sandbox.bitrix import BitrixControl

MEMBER = "rights-portal"
CODE = "rightscode"
DOMAIN = "rights.bitrix24.com"


def patch_portal(control: BitrixControl, **knobs: Any) -> dict[str, Any]:
    return control.patch_portal(MEMBER, **knobs)


def group_ids(rest: httpx.Client, **extra: Any) -> list[str]:
    answer = rest.post("socialnetwork.api.workgroup.list", json={"select": ["ID", "NAME"], **extra})
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["result"]["workgroups"]]


def user_ids(rest: httpx.Client, **extra: Any) -> list[str]:
    answer = rest.post("user.get", json=extra)
    assert answer.status_code == 200, answer.text
    return [row["ID"] for row in answer.json()["result"]]


def test_secret_groups_are_listed_only_to_an_admin_asking_with_is_admin(
    control: BitrixControl, rest: httpx.Client
) -> None:
    control.add_owners(
        MEMBER,
        "groups",
        [
            {"ID": "5", "NAME": "Open"},
            {"ID": "6", "NAME": "Secret", "VISIBLE": "N", "OWNER_ID": "7"},
            {"ID": "8", "NAME": "Mine and secret", "VISIBLE": "N", "OWNER_ID": "1"},
        ],
    )

    assert group_ids(rest) == ["5", "8"]
    assert group_ids(rest, params={"IS_ADMIN": "Y"}) == ["5", "6", "8"]

    assert patch_portal(control, webhook_admin=False)["webhook_admin"] is False
    assert group_ids(rest, params={"IS_ADMIN": "Y"}) == ["5", "8"]  # a non-admin's Y is ignored


def test_extranet_users_are_listed_only_in_admin_mode_by_an_admin(
    control: BitrixControl, rest: httpx.Client
) -> None:
    control.add_owners(
        MEMBER,
        "users",
        [{"ID": "2", "NAME": "Staff"}, {"ID": "3", "NAME": "Guest", "USER_TYPE": "extranet"}],
    )

    assert user_ids(rest) == ["1", "2"]
    assert user_ids(rest, ADMIN_MODE="True") == ["1", "2", "3"]
    assert user_ids(rest, ADMIN_MODE=False) == ["1", "2"]

    patch_portal(control, webhook_admin=False)
    assert user_ids(rest, ADMIN_MODE="True") == ["1", "2"]


def test_a_method_outside_the_webhooks_scopes_answers_insufficient_scope(
    control: BitrixControl, rest: httpx.Client
) -> None:
    assert rest.post("scope").json()["result"] == ["calendar", "im", "sonet_group", "user"]
    view = patch_portal(control, webhook_scopes=["calendar", "user_brief"])
    assert view["webhook_scopes"] == ["calendar", "user_brief"]

    assert rest.post("scope").json()["result"] == ["calendar", "user_brief"]
    assert rest.post("scope", json={"full": True}).json()["result"] == [
        "calendar",
        "im",
        "sonet_group",
        "user",
    ]
    refused = rest.post("im.notify.system.add", json={"USER_ID": 1, "MESSAGE": "hi"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert rest.post("user.get").status_code == 200  # user_brief lists users
    batch = rest.post(
        "batch",
        json={
            "cmd": {
                "groups": "socialnetwork.api.workgroup.list",
                "sections": "calendar.section.get?type=company_calendar&ownerId=0",
            }
        },
    ).json()["result"]
    assert batch["result_error"]["groups"]["error"] == "insufficient_scope"
    assert batch["result"]["sections"] == []

    patch_portal(control, webhook_scopes=None)
    assert rest.post("im.notify.system.add", json={"USER_ID": 1, "MESSAGE": "hi"}).is_success


def test_bad_rights_knobs_are_refused(control: BitrixControl) -> None:
    for knobs in ({"webhook_admin": "yes"}, {"webhook_scopes": "calendar"}):
        # Raw: the control API's refusal (400) is what is tested here.
        answer = control.http.patch(f"/portals/{MEMBER}", json=knobs)
        assert answer.status_code == 400, knobs


def test_sections_carry_the_sync_providers_external_type(
    control: BitrixControl, rest: httpx.Client
) -> None:
    for external in ("icloud", "office365", "caldav", "google_readonly"):
        control.add_section(MEMBER, "company_calendar", None, external, external_type=external)

    rows = rest.post("calendar.section.get", json={"type": "company_calendar", "ownerId": 0})

    assert [(r["NAME"], r["EXTERNAL_TYPE"]) for r in rows.json()["result"]] == [
        ("icloud", "icloud"),
        ("office365", "office365"),
        ("caldav", "caldav"),
        ("google_readonly", "google_readonly"),
    ]
