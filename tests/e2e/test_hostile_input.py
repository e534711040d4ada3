"""What an outsider can send over HTTP: no delivery fails another, no input yields a 5xx or a
traceback, a slow body is cut off, and a locked inbox answers 503 within the bound."""

from __future__ import annotations

import json
import random
import select
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from bridge.sandbox.bitrix import http_build_query
from tests.e2e.conftest import Bridge

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MakeBridge = Callable[..., Bridge]


def auth(bridge: Bridge) -> dict[str, str]:
    return {
        "domain": bridge.portal.domain,
        "member_id": bridge.portal.member_id,
        "application_token": bridge.portal.application_token,
    }


def genuine(bridge: Bridge, section_id: int) -> str:
    fields = {
        "event": "ONCALENDARSECTIONADD",
        "data": {"id": str(section_id)},
        "ts": "1734608536",
        "auth": auth(bridge),
    }
    return http_build_query(fields)


def unstorable(bridge: Bridge) -> list[tuple[str, str]]:
    """Authentic deliveries the database cannot store as they are (body, content type)."""
    base = {"data": {"id": "77"}, "ts": "1734608536", "auth": auth(bridge)}
    surrogate = json.dumps(
        {**base, "event": "ONCALENDARSECTIONADD", "data": {"id": "77", "n": "\ud800"}}
    )
    return [
        (surrogate, JSON),  # a lone UTF-16 surrogate in a JSON string
        (http_build_query({**base, "event": "ON" + "X" * 63}), FORM),  # longer than its column
        (http_build_query({**base, "event": "ONCALENDARSECTIONADD\x00"}), FORM),  # NUL
        (json.dumps({**base, "event": "ONCALENDARSECTIONADD", "ts": "\udfff"}), JSON),
    ]


def post(bridge: Bridge, path: str, body: str | bytes, content_type: str) -> httpx.Response:
    return bridge.http.post(
        f"{bridge.web_url}{path}", content=body, headers={"content-type": content_type}
    )


def test_genuine_deliveries_all_get_200_beside_unstorable_ones(make_bridge: MakeBridge) -> None:
    bridge = make_bridge(worker=False)
    stored: set[str] = set()
    for round_ in range(4):
        ids = [round_ * 1000 + n + 1 for n in range(80)]
        sends = [(genuine(bridge, i), FORM, str(i)) for i in ids]
        sends += [(body, kind, "") for body, kind in unstorable(bridge)]
        random.Random(round_).shuffle(sends)

        def send(item: tuple[str, str, str], start: threading.Barrier) -> tuple[str, int]:
            with httpx.Client(timeout=15) as client:  # a connection each, none shared
                start.wait()  # all at once: they share group commits
                answer = client.post(
                    f"{bridge.web_url}/bitrix/events",
                    content=item[0],
                    headers={"content-type": item[1]},
                )
            return item[2], answer.status_code

        with ThreadPoolExecutor(max_workers=len(sends)) as pool:
            barrier = threading.Barrier(len(sends))
            answers = list(pool.map(send, sends, [barrier] * len(sends)))

        assert sorted(status for section, status in answers if section) == [200] * 80
        assert sorted(status for section, status in answers if not section) == [400] * 4
        stored.update(str(i) for i in ids)
        assert {row.section_id for row in bridge.inbox()} == stored


def test_what_used_to_answer_500_now_answers_4xx(make_bridge: MakeBridge) -> None:
    bridge = make_bridge(worker=False, app={})
    p = bridge.portal
    install = f"auth[member_id]={p.member_id}&auth[domain]={p.domain}&auth[access_token]=a1"
    install += "&auth[refresh_token]=r1&auth[application_token]=t1"
    huge = '{"event": "ONCALENDARSECTIONADD", "data": {"id": ' + "9" * 4301 + "}}"
    cases = [
        ("/bitrix/events", huge, JSON, ""),
        ("/bitrix/events", '{"event": "X", "n": NaN}', JSON, ""),
        ("/bitrix/events", '{"event": "X", "n": 1e999}', JSON, ""),
        ("/bitrix/install", install + "&auth[expires_in]=" + "9" * 15, FORM, "auth[expires_in]"),
        ("/bitrix/install", install + "&auth[expires_in]=" + quote("²"), FORM, "auth[expires_in]"),
        (
            "/bitrix/events",
            f"{install}&event=ONAPPINSTALL&auth[expires_in]={'9' * 15}",
            FORM,
            "auth[expires_in]",
        ),
    ]
    for path, body, kind, field in cases:
        answer = post(bridge, path, body, kind)
        assert answer.status_code == 400, (body[:80], answer.text)
        assert answer.json().get("field", "") == field, answer.text
    assert bridge.inbox() == []


def test_errors_quote_at_most_a_hundred_characters_of_the_request(bridge: Bridge) -> None:
    long_key = "k" * 5000
    for body, kind in [
        (f"{long_key}[=1", FORM),  # unclosed bracket: the key is named in the error
        (f"event=X&a{'[b]' * 20000}=1", FORM),
        ("event=X", "text/" + "x" * 5000),
        (f"event={'E' * 5000}&auth[member_id]=m", FORM),
    ]:
        answer = post(bridge, "/bitrix/events", body, kind)
        assert 400 <= answer.status_code < 500, answer.text[:200]
        assert len(answer.text) < 500, answer.text[:200]


def escape(text: str) -> str:
    """Percent-encoding that keeps a lone surrogate (as its three CESU-8 bytes)."""
    return quote(text, safe="", errors="surrogatepass")


def hostile_bodies(bridge: Bridge, count: int) -> list[tuple[bytes, str]]:  # noqa: C901  # one branch per hostile shape
    """Generated bodies, each with the content type it is sent with."""
    rng = random.Random(11)
    a = auth(bridge)
    oddities = [
        "\ud800",
        "\udfff",
        "\x00",
        "²",
        "٣",
        "\u202e",
        "e\u0301",
        "🗓",
        "\ufeff",
        "%",
        "&",
        "=",
    ]
    odd = lambda: "".join(rng.choice(oddities) for _ in range(rng.randint(1, 6)))  # noqa: E731
    wrong = [[], {}, 1, 1.5, True, None, "", [[1]], {"a": {"b": 1}}]

    def json_body() -> str:
        fields: dict[str, Any] = {
            "event": "ONFUZZ",
            "data": {"id": "5"},
            "auth": dict(a),
        }
        choice = rng.randint(0, 6)
        if choice == 0:
            fields[rng.choice(["event", "data", "auth", "ts"])] = rng.choice(wrong)
        elif choice == 1:
            fields["auth"][rng.choice([*a, "expires_in"])] = rng.choice([*wrong, odd()])
        elif choice == 2:
            fields[odd()] = odd()
            fields["event"] = "ON" + odd()
        elif choice == 3:
            return '{"event": "A", "event": "B", "auth": ' + json.dumps(a) + ', "auth": 1}'
        elif choice == 4:
            depth = rng.choice([5, 50, 5000, 30000])
            return "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1"
        elif choice == 5:
            number = rng.choice(["9" * 4301, "1e999", "-1e999", "NaN", "-Infinity", "1" * 300])
            return json.dumps(fields)[:-1] + ', "n": ' + number + "}"
        else:
            fields["data"]["id"] = rng.choice(["-1", "0", "9" * 19, odd(), "1" * 5000])
            fields["event"] = "ONCALENDARSECTIONUPDATE"
        return json.dumps(fields, ensure_ascii=rng.random() < 0.5)

    def form_body() -> str:
        pairs = [f"auth[{k}]={quote(v)}" for k, v in a.items()]
        choice = rng.randint(0, 5)
        if choice == 0:
            pairs.append(rng.choice(["a[[[[=1", "a]]]]=1", "a[b]c=1", "[]=1", "a[][]=1", "a[=1"]))
            pairs.append("a" + "[" * rng.choice([10, 1000, 20000]) + "=1")
        elif choice == 1:
            pairs += ["event=ONFUZZ", "event=ONFUZZ2", "data=1", "data[id]=2", "auth=x"]
        elif choice == 2:
            pairs.append(f"event={escape('ON' + odd())}")
            pairs.append(f"{escape(odd())}={escape(odd())}")
        elif choice == 3:
            pairs.append("event=ONFUZZ")
            pairs.append(f"auth[expires_in]={rng.choice(['9' * 15, quote('²'), '-1', '1e9'])}")
        elif choice == 4:
            pairs.append("event=" + "%" + rng.choice(["", "0", "zz", "c3", "ed%a0%80", "00"]))
        else:
            pairs.append(
                "event=ONFUZZ&" + "&".join(f"k{n}=1" for n in range(rng.choice([10, 300])))
            )
        rng.shuffle(pairs)
        return "&".join(pairs)

    bodies: list[tuple[bytes, str]] = []
    for _ in range(count):
        kind = rng.randint(0, 9)
        if kind < 4:
            bodies.append((json_body().encode("utf-8", "surrogatepass"), JSON))
        elif kind < 8:
            bodies.append((form_body().encode("utf-8", "surrogatepass"), FORM))
        else:
            noise = rng.randbytes(rng.randint(0, 3000))
            bodies.append(
                (noise, rng.choice([JSON, FORM, "text/plain", "", "application/json; x"]))
            )
    return bodies


def test_hostile_bodies_get_4xx_and_the_bridge_still_works(make_bridge: MakeBridge) -> None:
    bridge = make_bridge()
    bodies = hostile_bodies(bridge, 300)

    def send(share: range) -> list[tuple[int, str, int]]:
        answers = []
        with httpx.Client(timeout=15) as client:  # one per thread: no pool shared by threads
            for index in share:
                body, kind = bodies[index]
                path = "/bitrix/install" if index % 3 == 0 else "/bitrix/events"
                headers = {"content-type": kind} if kind else {}
                answer = client.post(f"{bridge.web_url}{path}", content=body, headers=headers)
                answers.append((index, answer.text, answer.status_code))
        return answers

    with ThreadPoolExecutor(max_workers=16) as pool:
        shares = [range(n, len(bodies), 16) for n in range(16)]
        answers = [answer for share in pool.map(send, shares) for answer in share]

    failed = [(bodies[i][0][:80], code, text[:200]) for i, text, code in answers if code >= 500]
    assert failed == []  # the store is healthy, so not even a 503
    assert not [text for _, text, _ in answers if "Traceback" in text or len(text) > 600]
    assert {status for _, _, status in answers} <= {200, 400, 401, 403, 413, 415}
    rows = len(bridge.inbox())

    bridge.add_section("company_calendar", 0, "After the storm")
    bridge.wait_applied(rows + 1)
    assert [c["summary"] for c in bridge.calendars()] == ["After the storm"]


def test_a_body_that_trickles_in_is_cut_off_with_408(make_bridge: MakeBridge) -> None:
    bridge = make_bridge(worker=False, web={"body_timeout": 1.0})
    body = genuine(bridge, 5).encode()
    url = urlsplit(bridge.web_url)
    head = (
        f"POST /bitrix/events HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {FORM}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    answer = b""
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        while sent < len(body):  # one byte every 0.2 s: the whole body would take ~30 s
            if select.select([sock], [], [], 0.2)[0]:
                answer = sock.recv(4096)
                break
            sock.sendall(body[sent : sent + 1])
            sent += 1
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert sent < len(body) // 2
    assert bridge.inbox() == []
    assert post(bridge, "/bitrix/events", body, FORM).status_code == 200


def _answer_to_raw(bridge: Bridge, head: str, body: bytes) -> bytes:
    """What the bridge answers to a request sent as raw bytes (the body as far as it reads)."""
    url = urlsplit(bridge.web_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        for start in range(0, len(body), 16_384):
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the rest was sent
            sock.sendall(body[start : start + 16_384])
        return sock.recv(4096)


def test_a_body_over_the_limit_is_refused_however_its_length_is_written(
    make_bridge: MakeBridge,
) -> None:
    """A length padded with zeros (to the 20 digits the server reads), and a chunked body
    without one, are both refused with 413 (nothing held in memory past the limit), and nothing
    is stored."""
    bridge = make_bridge(worker=False)
    url = urlsplit(bridge.web_url)
    big = b"event=" + b"A" * 1_048_576
    start = f"POST /bitrix/events HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {FORM}\r\n"
    padded = start + f"Content-Length: {len(big):0>20}\r\n\r\n"
    chunked = start + "Transfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(big[i : i + 8192]), big[i : i + 8192])
        for i in range(0, len(big), 8192)
    )

    for head, body in ((padded, big), (chunked, chunks + b"0\r\n\r\n")):
        answer = _answer_to_raw(bridge, head, body)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert bridge.inbox() == []
    assert post(bridge, "/bitrix/events", genuine(bridge, 7), FORM).status_code == 200


def test_a_locked_inbox_answers_503_within_the_bound(make_bridge: MakeBridge) -> None:
    bridge = make_bridge(worker=False, web={"store_timeout": 1.0})
    # SQLite: the holder's BEGIN IMMEDIATE takes the write lock; PostgreSQL: the table lock.
    with bridge.engine.connect() as holder, holder.begin():
        if holder.dialect.name == "postgresql":
            holder.exec_driver_sql("LOCK TABLE inbox_event IN EXCLUSIVE MODE")
        answer = bridge.http.post(
            f"{bridge.web_url}/bitrix/events",
            content=genuine(bridge, 6),
            headers={"content-type": FORM},
            timeout=5,  # the bound is 1 s: a timeout here means the lock held the request
        )
        assert answer.status_code == 503, answer.text
        assert "nothing was accepted" in answer.json()["error"]

    after = post(bridge, "/bitrix/events", genuine(bridge, 7), FORM)
    assert after.status_code == 200, after.text
    assert [row.section_id for row in bridge.inbox()] == ["7"]
