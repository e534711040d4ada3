"""The Bitrix24 emulator's method time budget (`limits.md`): baskets, 429, batch, knobs."""

from __future__ import annotations

import time

import httpx

from bridge.sandbox.bitrix import BitrixControl

MEMBER = "b0d9e1c3710f85df22e9377d6c4f7553"
CODE = "budgetcode"
DOMAIN = "budget.bitrix24.com"
SECTIONS = "calendar.section.get"


def budget(control: BitrixControl, **knobs: object) -> httpx.Response:
    """Raw, not `patch_portal`: these tests read the control API's refusals (400s) too."""
    return control.http.patch(f"/portals/{MEMBER}", json=knobs)


def sections(rest: httpx.Client) -> httpx.Response:
    return rest.post(f"{SECTIONS}.json", json={"type": "company_calendar", "ownerId": 0})


def test_every_answer_reports_the_method_budget(rest: httpx.Client) -> None:
    before = time.time()
    first = sections(rest).json()["time"]
    second = sections(rest).json()["time"]

    assert 0 < first["operating"] <= second["operating"] < 1
    assert before + 600 <= first["operating_reset_at"] <= time.time() + 601
    assert isinstance(first["operating_reset_at"], int)
    assert second["operating_reset_at"] == first["operating_reset_at"]


def test_the_call_that_crosses_completes_and_the_next_is_refused_until_a_reset(
    control: BitrixControl, rest: httpx.Client
) -> None:
    assert budget(control, operating_limit_s=30, method_cost_s={SECTIONS: 20}, basket_s=0.2).json()[
        "method_cost_s"
    ] == {SECTIONS: 20}

    assert sections(rest).json()["time"]["operating"] == 20
    crossing = sections(rest)
    refused = sections(rest)

    assert crossing.status_code == 200
    assert crossing.json()["time"]["operating"] == 40
    assert refused.status_code == 429
    assert refused.json()["error"] == "OPERATION_TIME_LIMIT"
    assert rest.post("calendar.resource.list.json").status_code == 200  # other methods work
    reset_at = crossing.json()["time"]["operating_reset_at"]
    assert reset_at <= time.time() + 3  # ten baskets of 0.2 s, rounded up to a second
    while time.time() < reset_at:  # the budget resetting with time is what is tested
        time.sleep(0.05)
    assert sections(rest).status_code == 200


def test_batch_counts_each_nested_call_against_its_own_method(
    control: BitrixControl, rest: httpx.Client
) -> None:
    budget(control, operating_limit_s=15, method_cost_s={SECTIONS: 10, "user.get": 1})
    command = f"{SECTIONS}?type=company_calendar&ownerId=0"
    answer = rest.post(
        "batch.json", json={"cmd": {"a": command, "b": command, "c": command, "u": "user.get"}}
    ).json()

    spent = answer["result"]["result_time"]
    assert [spent["a"]["operating"], spent["b"]["operating"], spent["u"]["operating"]] == [
        10,
        20,
        1,
    ]
    assert answer["result"]["result_error"]["c"]["error"] == "OPERATION_TIME_LIMIT"
    assert "operating" not in answer["time"]  # the outer batch is not counted
    assert sections(rest).status_code == 429


def test_the_limit_can_be_turned_off_and_bad_knobs_are_refused(
    control: BitrixControl, rest: httpx.Client
) -> None:
    budget(control, operating_limit_s=None, method_cost_s={SECTIONS: 1000})
    assert [sections(rest).status_code for _ in range(3)] == [200, 200, 200]

    assert budget(control, operating_limit_s="lots").status_code == 400
    assert budget(control, basket_s=0).status_code == 400
    assert budget(control, method_cost_s=[1]).status_code == 400


def test_overload_limit_is_a_fault(control: BitrixControl, rest: httpx.Client) -> None:
    control.fault(
        member_id=MEMBER,
        method=SECTIONS,
        status=503,
        error="OVERLOAD_LIMIT",
        description="REST API is blocked due to overload",
    )

    answer = sections(rest)

    assert answer.status_code == 503
    assert answer.json()["error"] == "OVERLOAD_LIMIT"
