"""Which deliveries a change to a section or a calendar entry causes: the outgoing webhooks
bound to its event, then the installed apps' (online and offline). The caller queues them."""

from __future__ import annotations

from bridge.sandbox.bitrix.apps import app_events
from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.state import Portal

_SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"


def section_events(
    portal: Portal,
    action: str,
    section_id: int,
    base_url: str,
    *,
    user_id: int | None = None,
    connector: str = "",
) -> list[DeliveryJob]:
    """Outgoing-webhook deliveries, then those of installed apps (online and offline)."""
    return _change_events(
        portal, f"ONCALENDARSECTION{action}", section_id, base_url, user_id, connector
    )


def entry_events(
    portal: Portal,
    action: str,
    entry_id: int,
    base_url: str,
    *,
    user_id: int | None = None,
    connector: str = "",
) -> list[DeliveryJob]:
    """ONCALENDARENTRY{ADD,UPDATE,DELETE}: the section events' shape, `data[id]` the entry id
    (api-reference/calendar/calendar-event/events/on-calendar-entry-add.md and siblings)."""
    event = f"ONCALENDARENTRY{action}"
    return _change_events(portal, event, entry_id, base_url, user_id, connector)


def _change_events(
    portal: Portal,
    event: str,
    object_id: int,
    base_url: str,
    user_id: int | None,
    connector: str,
) -> list[DeliveryJob]:
    hooks = [
        DeliveryJob(
            member_id=portal.member_id,
            handler_id=hook.id,
            url=hook.url,
            event=event,
            section_id=object_id,
            auth={
                "domain": portal.domain,
                "client_endpoint": f"{base_url}/rest/",
                "server_endpoint": _SERVER_ENDPOINT,
                "member_id": portal.member_id,
                "application_token": hook.application_token,
            },
        )
        for hook in portal.hooks
        if event in hook.events
    ]
    apps = app_events(
        portal.apps,
        member_id=portal.member_id,
        domain=portal.domain,
        event=event,
        section_id=object_id,
        base_url=base_url,
        user_id=user_id,
        connector=connector,
    )
    return hooks + apps
