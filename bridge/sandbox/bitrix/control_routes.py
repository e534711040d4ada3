"""The URL table of the Bitrix24 emulator's `/_control/` API: every endpoint of its parts
(`control_api.py`, `section_control.py`, `entry_control.py`, `app_control.py`), each guarded."""

from __future__ import annotations

from starlette.routing import Route

from bridge.sandbox.bitrix.app_control import AppControl
from bridge.sandbox.bitrix.control_api import Control
from bridge.sandbox.bitrix.control_http import guard
from bridge.sandbox.bitrix.entry_control import EntryControl
from bridge.sandbox.bitrix.section_control import SectionControl
from bridge.sandbox.bitrix.state import State

PORTAL = "/_control/portals/{member_id}"
_READ = ["GET", "DELETE"]


def control_routes(state: State) -> list[Route]:
    control = Control(state)
    return [
        *_app_routes(AppControl(state)),
        *_portal_routes(control),
        *_section_routes(SectionControl(state)),
        *_entry_routes(EntryControl(state)),
        *_log_routes(control),
    ]


def _app_routes(apps: AppControl) -> list[Route]:
    return [
        Route("/_control/apps", guard(apps.add_app), methods=["POST"]),
        Route(f"{PORTAL}/install", guard(apps.install), methods=["POST"]),
        Route(f"{PORTAL}/uninstall", guard(apps.uninstall), methods=["POST"]),
        Route(f"{PORTAL}/expire-tokens", guard(apps.expire_tokens), methods=["POST"]),
        Route(f"{PORTAL}/app", guard(apps.view_app), methods=["GET"]),
        Route(f"{PORTAL}/offline", guard(apps.view_offline), methods=["GET"]),
        Route(f"{PORTAL}/plan", guard(apps.plan), methods=["GET", "PUT"]),
    ]


def _portal_routes(control: Control) -> list[Route]:
    return [
        Route("/_control/portals", guard(control.add_portal), methods=["POST"]),
        Route("/_control/portals", guard(control.list_portals), methods=["GET"]),
        Route(PORTAL, guard(control.patch_portal), methods=["PATCH"]),
        Route(f"{PORTAL}/outgoing-webhooks", guard(control.add_hook), methods=["POST"]),
        Route(
            f"{PORTAL}/outgoing-webhooks/{{hook_id}}",
            guard(control.delete_hook),
            methods=["DELETE"],
        ),
        Route(f"{PORTAL}/users", guard(control.add_users), methods=["POST"]),
        Route(f"{PORTAL}/notifications", guard(control.notifications), methods=["GET"]),
        Route(f"{PORTAL}/groups", guard(control.add_groups), methods=["POST"]),
    ]


def _section_routes(sections: SectionControl) -> list[Route]:
    return [
        Route(f"{PORTAL}/sections", guard(sections.add_section), methods=["POST"]),
        Route(f"{PORTAL}/sections", guard(sections.list_sections), methods=["GET"]),
        Route(
            f"{PORTAL}/sections/{{section_id:int}}",
            guard(sections.change_section),
            methods=["PATCH", "DELETE"],
        ),
    ]


def _entry_routes(entries: EntryControl) -> list[Route]:
    return [
        Route(f"{PORTAL}/entries", guard(entries.add_entry), methods=["POST"]),
        Route(f"{PORTAL}/entries", guard(entries.list_entries), methods=["GET"]),
        Route(
            f"{PORTAL}/entries/{{entry_id:int}}",
            guard(entries.change_entry),
            methods=["PATCH", "DELETE"],
        ),
        Route(
            f"{PORTAL}/entries/{{entry_id:int}}/{{action}}",
            guard(entries.occurrence),
            methods=["POST"],
        ),
    ]


def _log_routes(control: Control) -> list[Route]:
    """Faults, the request and delivery logs, and the reset of everything."""
    return [
        Route("/_control/faults", guard(control.faults), methods=[*_READ, "POST"]),
        Route("/_control/requests", guard(control.requests), methods=_READ),
        Route("/_control/deliveries", guard(control.deliveries), methods=_READ),
        Route("/_control/deliveries/flush", guard(control.flush), methods=["POST"]),
        Route("/_control/reset", guard(control.reset), methods=["POST"]),
    ]
