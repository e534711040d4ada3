"""The Google gateway's transport: httplib2 that never sends a POST twice (a second
`calendars.insert` is a second calendar)."""

from __future__ import annotations

from typing import Any

import httplib2


class SingleSendHttp(httplib2.Http):
    """httplib2 that puts a POST on the wire at most once.

    httplib2 re-sends any request once when the connection drops before the status line, taking
    it for a stale keep-alive connection, whatever the retry settings; for `calendars.insert`
    that makes a second calendar. Here a POST always starts on a fresh connection, so a drop
    means the server did receive it: the error reaches the caller, which looks for the marker.
    """

    def _conn_request(
        self, conn: Any, request_uri: str, method: str, body: Any, headers: Any
    ) -> Any:
        if method != "POST":
            return super()._conn_request(conn, request_uri, method, body, headers)  # type: ignore[misc]
        conn.close()
        send = conn.request
        sent = False

        def send_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal sent
            if sent:
                raise ConnectionAbortedError("connection dropped after a POST was sent")
            sent = True
            return send(*args, **kwargs)

        conn.request = send_once
        try:
            return super()._conn_request(conn, request_uri, method, body, headers)  # type: ignore[misc]
        finally:
            conn.request = send
