"""The mass-delete guard's rule: removals within the window, planned ones added, against a limit
that is a share of the portal's calendars with a floor and a ceiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, DeleteGuard, OnDelete, PortalConfig, load_portals
from bridge.mirror import Action, ActionKind, guard_deletions, removal_limit
from tests.test_config import ENV, portal, write


def acme(tmp_path: Path, **guard: Any) -> PortalConfig:
    mirror = {"groups": [12], "delete_guard": guard}
    [config] = load_portals(write(tmp_path, portal(mirror=mirror)), ENV)
    return config


def removals(count: int, policy: OnDelete = OnDelete.DELETE) -> list[Action]:
    return [Action(ActionKind.RETIRE, str(100 + i), on_delete=policy) for i in range(count)]


@pytest.mark.parametrize(
    ("calendars", "limit"),
    [(0, 3), (5, 3), (10, 3), (16, 4), (28, 7), (40, 10), (200, 50), (201, 50), (1000, 50)],
)
def test_the_default_limit_is_a_quarter_at_least_3_at_most_50(calendars: int, limit: int) -> None:
    assert removal_limit(DeleteGuard(), calendars) == limit


def test_a_zero_floor_lets_the_share_alone_decide() -> None:
    guard = DeleteGuard(min_count=0, max_count=100, max_share=0.5)

    assert [removal_limit(guard, n) for n in (1, 2, 7, 400)] == [0, 1, 3, 100]


def test_a_hand_deletion_of_two_on_a_small_portal_passes(tmp_path: Path) -> None:
    config = acme(tmp_path)

    assert guard_deletions(config, removals(2), mapped=5) is None
    assert guard_deletions(config, removals(1), mapped=4, removed=1) is None


def test_most_of_a_small_portal_is_held_back_at_once_or_over_passes(tmp_path: Path) -> None:
    config = acme(tmp_path)

    at_once = guard_deletions(config, removals(4), mapped=5)
    third_pass = guard_deletions(config, removals(3), mapped=7, removed=3)  # 10 at the start

    assert at_once is not None and at_once.startswith(
        "would delete or archive 4 of 5 calendars after 0 removed in the last 24 h, "
        "more than the 3 allowed per 24 h (25% of 5, at least 3, at most 50)"
    )
    assert "bridge sync --portal acme --force" in at_once
    assert third_pass is not None and "3 of 7 calendars after 3 removed" in third_pass


def test_the_share_is_of_the_calendars_at_the_start_of_the_window(tmp_path: Path) -> None:
    config = acme(tmp_path)

    # 40 calendars at the start: 10 may go, whichever passes they go in.
    assert guard_deletions(config, removals(4), mapped=34, removed=6) is None
    assert guard_deletions(config, removals(5), mapped=34, removed=6) is not None
    assert guard_deletions(config, removals(1), mapped=30, removed=10) is not None


def test_only_removals_count(tmp_path: Path) -> None:
    config = acme(tmp_path)
    forget = removals(20, OnDelete.KEEP)
    update = [Action(ActionKind.UPDATE, "7", changes=("summary",))]

    assert guard_deletions(config, forget + update, mapped=5, removed=3) is None
    assert guard_deletions(config, removals(1, OnDelete.ARCHIVE), mapped=5, removed=3)


def test_the_window_and_limits_are_configurable(tmp_path: Path) -> None:
    config = acme(tmp_path, window_hours=0.5, min_count=1, max_count=2, max_share=1)

    assert guard_deletions(config, removals(2), mapped=2) is None
    blocked = guard_deletions(config, removals(1), mapped=8, removed=2)
    assert blocked is not None and "after 2 removed in the last 0.5 h" in blocked


@pytest.mark.parametrize(
    ("guard", "expected"),
    [
        (
            {"min_count": 5, "max_count": 4},
            "key mirror.delete_guard: min_count (5) is more than max_count (4)",
        ),
        ({"window_hours": 0}, "key mirror.delete_guard.window_hours"),
        ({"min_count": -1}, "key mirror.delete_guard.min_count"),
        ({"max_share": 1.5}, "key mirror.delete_guard.max_share"),
        ({"window": 24}, "key mirror.delete_guard.window: unknown key"),
    ],
)
def test_a_bad_guard_is_refused_with_its_key(
    tmp_path: Path, guard: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        acme(tmp_path, **guard)

    assert expected in str(caught.value)
