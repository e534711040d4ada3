"""What both emulators' control clients share: their `/_control/` API over HTTP."""

from __future__ import annotations

from typing import Any

import httpx


class ControlClient:
    """One emulator's `/_control/` API; each call raises `httpx.HTTPStatusError` on an error."""

    def __init__(self, base_url: str, *, timeout: float = 15) -> None:
        self.base_url = base_url.rstrip("/")
        # Idle connections are dropped before uvicorn's keep-alive (5 s) closes them: at 5 s on
        # both sides, a request could go out on a connection the emulator was just closing
        # (`ReadError: Connection reset by peer`).
        limits = httpx.Limits(keepalive_expiry=2)
        self.http = httpx.Client(
            base_url=f"{self.base_url}/_control", timeout=timeout, limits=limits
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **options: Any) -> Any:
        answer = self.http.request(method, path, **options)
        answer.raise_for_status()
        return answer.json() if answer.content else None
