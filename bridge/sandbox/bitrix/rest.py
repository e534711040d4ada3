"""What every REST method of the Bitrix24 emulator shares: the `Call` it takes, the `Outcome` it
returns, the `RestError` it raises (shaped like the portal's own) and the envelope's `time`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.bitrix.change_events import section_events
from bridge.sandbox.bitrix.delivery import DeliveryJob
from bridge.sandbox.bitrix.state import Portal
from bridge.sandbox.bitrix.values import as_text


class RestError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


@dataclass
class Outcome:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class Call:
    portal: Portal
    params: dict[str, Any]
    base_url: str
    jobs: list[DeliveryJob]
    client_id: str | None = None  # None: an incoming webhook; else the app of the access token
    user_id: int | None = None  # the token's user; None: the webhook's user

    def changed(self, action: str, section_id: int) -> None:
        """Queue the events of a section change made by this call."""
        self.jobs.extend(
            section_events(
                self.portal,
                action,
                section_id,
                self.base_url,
                user_id=self.user_id,
                connector=as_text(self.params.get("auth_connector")),
            )
        )


def calendar_error(description: str) -> RestError:
    return RestError(400, "", description)


def required(name: str, method: str, *, dot: bool = False) -> RestError:
    suffix = "." if dot else ""
    text = f'The required parameter "{name}" for the method "{method}" is not set{suffix}'
    return calendar_error(text)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def time_block(
    start: float, finish: float, operating: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`operating` is the method's budget (`budget`); the outer `batch` has none."""
    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        **(operating or {}),
    }
