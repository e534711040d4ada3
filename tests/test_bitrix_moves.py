"""The Bitrix24 client follows a renamed portal's redirect once, with the same POST and body
(`settings/how-to-call-rest-api/change-domen.md`), and keeps using the new address."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.bitrix import BitrixClient, BitrixError
from bridge.harness import Sandbox
from bridge.sandbox.server import ServerThread


@pytest.fixture
def moved_portal(sandbox: Sandbox) -> Iterator[tuple[str, str, str]]:
    """A portal whose webhook URL names `localhost`, moved to `127.0.0.1`: (old webhook URL,
    new REST root, member_id)."""
    member_id = secrets.token_hex(16)
    port = httpx.URL(sandbox.bitrix_url).port
    old, new = f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    created = sandbox.bitrix.add_portal(
        member_id, "old.bitrix24.com", secrets.token_hex(8), address=old
    )
    sandbox.bitrix.patch_portal(member_id, domain="new.bitrix24.com", address=new, moved=True)
    yield created["webhook_url"].replace(new, old), f"{new}/rest/", member_id


def test_a_post_is_resent_to_the_new_address_and_later_calls_go_straight_there(
    sandbox: Sandbox, moved_portal: tuple[str, str, str]
) -> None:
    webhook, new_rest, member_id = moved_portal
    moves: list[str] = []
    with BitrixClient(webhook, on_moved=moves.append) as client:
        added = client.call("calendar.section.add", {"type": "user", "ownerId": 1, "name": "Moved"})
        listed = client.call("calendar.section.get", {"type": "user", "ownerId": 1})

    assert [s["NAME"] for s in listed["result"]] == ["Moved"]
    assert str(added["result"]) == listed["result"][0]["ID"]
    assert moves == [new_rest]  # the REST root only: no user id, no secret code
    log = sandbox.bitrix.requests(member_id)
    assert [(r["method"], r["status"]) for r in log] == [
        ("calendar.section.add", 302),
        ("calendar.section.add", 200),
        ("calendar.section.get", 200),
    ]


class Redirecting:
    """A server that answers every request with a redirect to `target` (relative to itself)."""

    def __init__(self, target: str) -> None:
        self.hits: list[str] = []

        async def anything(request: Request) -> Response:
            self.hits.append(request.url.path)
            return Response(status_code=302, headers={"location": target})

        routes = [Route("/{path:path}", anything, methods=["GET", "POST"])]
        self.server = ServerThread(Starlette(routes=routes))


@pytest.mark.parametrize(
    "target",
    ["/auth/?login=yes", "/rest/1/code/another.method.json", "/rest/1/code/user.get.json"],
    ids=["a login page", "another method", "a second redirect"],
)
def test_a_redirect_is_followed_only_to_the_same_rest_call_and_only_once(target: str) -> None:
    redirecting = Redirecting(target)
    moves: list[str] = []
    with (
        redirecting.server,
        BitrixClient(
            f"{redirecting.server.url}/rest/1/code/", attempts=1, on_moved=moves.append
        ) as client,
        pytest.raises(BitrixError, match="not the REST envelope"),
    ):
        client.call("user.get")

    same_call = target.endswith("/user.get.json")
    assert len(redirecting.hits) == (2 if same_call else 1)
    assert len(moves) == (1 if same_call else 0)
