"""What every benchmark needs beyond `bridge.harness` (fresh databases, ports, waits, the control
clients): the emulators in a process of their own, a portal at Bitrix24's real pace, and the
bridge's own processes (`python -m bridge serve|worker|sync`), their peak memory and profiles."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy
import yaml

from bridge.harness import ROOT, free_port, wait_for
from bridge.harness import fresh_database as fresh_test_database
from bridge.sandbox.bitrix import BitrixControl, http_build_query
from bridge.sandbox.google import GoogleControl, generate_service_account

DATABASES = ("sqlite", "postgresql")


@dataclass
class PeakMemory:
    """Peak RSS (VmHWM) in MiB per role ("web", "worker"), and which run set it."""

    peaks: dict[str, tuple[float, str]] = field(default_factory=dict)

    def note(self, role: str, mib: float, run: str) -> None:
        if mib > self.peaks.get(role, (0.0, ""))[0]:
            self.peaks[role] = (mib, run)


MEMORY = PeakMemory()


@dataclass
class Profiling:
    """`--profile DIR`: py-spy samples every process the benchmarks start (collapsed stacks)."""

    folder: Path | None = None
    count: int = 0

    def attach(self, pid: int, role: str) -> subprocess.Popen[bytes] | None:
        if self.folder is None:
            return None
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        output = self.folder / f"{self.count:02d}-{role}.txt"
        spy = Path(sys.executable).with_name("py-spy")
        return subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--idle",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


PROFILING = Profiling()


def detach(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None and spy.poll() is None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a new PostgreSQL schema dropped after."""
    with fresh_test_database(kind, prefix="bench") as url:
        yield url


@dataclass
class Emulators:
    bitrix_url: str
    google_url: str
    bitrix: BitrixControl
    google: GoogleControl

    def bitrix_requests(self, member_id: str) -> list[dict[str, Any]]:
        return self.bitrix.requests(member_id)

    def google_requests(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.google.requests(user)

    def clear_logs(self) -> None:
        self.bitrix.clear_requests()
        self.google.clear_requests()


@contextmanager
def running_emulators(
    *, creation_limit: int = 1_000_000, google_rate: int = 1_000_000
) -> Iterator[Emulators]:
    """Both emulators in a subprocess (`bench.emulators`), at zero added latency."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.emulators",
            f"--creation-limit={creation_limit}",
            f"--google-rate={google_rate}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    spy = None
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        spy = PROFILING.attach(process.pid, "emulators")
        bitrix = BitrixControl(urls["bitrix"], timeout=120)
        google = GoogleControl(urls["google"], timeout=120)
        try:
            yield Emulators(urls["bitrix"], urls["google"], bitrix, google)
        finally:
            bitrix.close()
            google.close()
    finally:
        detach(spy)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Portal:
    key: str
    member_id: str
    domain: str
    token: str
    subject: str
    bitrix_url: str
    config: dict[str, Any]

    def event(self, section_id: int | str, event: str = "ONCALENDARSECTIONADD") -> bytes:
        """A delivery as Bitrix24 posts it: PHP bracket keys, form-encoded."""
        return http_build_query(
            {
                "event": event,
                "event_handler_id": "7",
                "data": {"id": str(section_id)},
                "ts": str(int(time.time())),
                "auth": {
                    "domain": self.domain,
                    "client_endpoint": f"{self.bitrix_url}/rest/",
                    "server_endpoint": "https://oauth.bitrix.info/rest/",
                    "member_id": self.member_id,
                    "application_token": self.token,
                },
            }
        ).encode()

    def control(self, emulators: Emulators, what: str) -> str:
        return f"{emulators.bitrix_url}/_control/portals/{self.member_id}/{what}"


def register_portal(
    emulators: Emulators,
    *,
    key: str = "bench",
    mirror: dict[str, Any] | None = None,
    google: dict[str, Any] | None = None,
    bitrix: dict[str, Any] | None = None,
) -> Portal:
    """A portal at Bitrix24's real leaky bucket (50, then 2/s) and a service account."""
    member_id, token = secrets.token_hex(16), secrets.token_hex(16)
    domain = f"{key}.bitrix24.com"
    added = emulators.bitrix.add_portal(member_id, domain, secrets.token_hex(8))
    account = generate_service_account(
        f"{emulators.google_url}/token", f"bridge-{key}@sandbox.iam.gserviceaccount.com"
    )
    emulators.google.add_service_account(account)
    subject = f"owner-{uuid.uuid4().hex[:6]}@{key}.example"
    config = {
        "key": key,
        "member_id": member_id,
        "domain": domain,
        "application_token": token,
        "bitrix": {"webhook_url": added["webhook_url"], **(bitrix or {})},
        "google": {
            "service_account": json.dumps(account),
            "subject": subject,
            "api_endpoint": f"{emulators.google_url}/calendar/v3/",
            **(google or {}),
        },
        "mirror": mirror or {"company": True, "resources": False, "locations": False, "groups": []},
    }
    return Portal(
        key=key,
        member_id=member_id,
        domain=domain,
        token=token,
        subject=subject,
        bitrix_url=emulators.bitrix_url,
        config=config,
    )


class BridgeProcess:
    """`python -m bridge COMMAND` (or any module) as an OS process, output to a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, role: str) -> None:
        self.role = role
        self.log = log
        self._log_file: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.peak_mib = 0.0
        self._spy = PROFILING.attach(self.process.pid, role)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_peak(self) -> float:
        """VmHWM of the live process, in MiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return self.peak_mib
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)
        return self.peak_mib

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; the peak RSS comes from the kernel's rusage of this child."""
        if self.process.returncode is not None:  # already reaped by Popen.poll()
            self._log_file.close()
            return self.process.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.peak_mib = max(self.peak_mib, usage.ru_maxrss / 1024)
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self._log_file.close()
                return self.process.returncode
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.role} did not exit in {timeout}s")
            time.sleep(0.02)

    def stop(self, run: str) -> int:
        detach(self._spy)
        if self.process.returncode is None:
            self.read_peak()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.wait(30)
            except TimeoutError:
                self.process.kill()
                self.wait()
        MEMORY.note(self.role, self.peak_mib, run)
        return self.process.returncode or 0


@dataclass
class Deployment:
    """The YAML config and environment that `serve`, `worker` and `sync` share."""

    database_url: str
    folder: Path
    portals: list[Portal]
    processes: list[BridgeProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        config = self.folder / "portals.yaml"
        if not config.exists():
            portals = {"portals": [portal.config for portal in self.portals]}
            config.write_text(yaml.safe_dump(portals), encoding="utf-8")
        return {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": self.database_url,
            "BRIDGE_CONFIG": str(config),
            **extra,
        }

    def start(self, argv: list[str], role: str, **env: str) -> BridgeProcess:
        name = f"{role}-{len(self.processes)}.log"
        process = BridgeProcess(argv, self.env(**env), self.folder / name, role)
        self.processes.append(process)
        return process

    def start_web(self, module: str | None = None) -> tuple[BridgeProcess, str]:
        """`python -m bridge serve`, or `module` (an ASGI app) under the same uvicorn settings."""
        port = free_port()
        if module is None:
            argv = ["-m", "bridge", "serve", "--host", "127.0.0.1", "--port", str(port)]
            role = "web"
        else:
            argv = ["-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--no-access-log", "--log-level", "warning"]
            role = "floor"
        process = self.start(argv, role)
        url = f"http://127.0.0.1:{port}"
        _wait_listening(port, process)
        return process, url

    def start_worker(self) -> BridgeProcess:
        return self.start(["-m", "bridge", "worker"], "worker")

    def stop_all(self, run: str) -> None:
        for process in self.processes:
            process.stop(run)
        self.processes.clear()


@contextmanager
def deployment(database_url: str, portals: list[Portal], run: str) -> Iterator[Deployment]:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        deployed = Deployment(database_url=database_url, folder=Path(folder), portals=portals)
        try:
            yield deployed
        finally:
            deployed.stop_all(run)


def _wait_listening(port: int, process: BridgeProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.role} exited: {process.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.role} did not listen on {port} in {timeout}s")
        time.sleep(0.05)


async def add_sections(
    emulators: Emulators, portal: Portal, bodies: list[dict[str, Any]], label: str
) -> list[str]:
    """Create sections in the Bitrix24 emulator without delivering events; returns their ids."""
    import asyncio

    from bench.load import Connection
    from bench.progress import Progress

    progress = Progress(label, len(bodies), " sections")
    ids: list[str] = [""] * len(bodies)
    queue = list(enumerate(bodies))
    url = portal.control(emulators, "sections")

    async def create() -> None:
        connection = Connection(url)
        try:
            while queue:
                index, body = queue.pop()
                data = json.dumps({**body, "deliver": False}).encode()
                status, answer = await connection.post(data, "application/json")
                if status != 201:
                    raise RuntimeError(f"section not created: {status} {answer!r}")
                ids[index] = str(json.loads(answer)["ID"])
                progress.advance()
        finally:
            await connection.close()

    await asyncio.gather(*(create() for _ in range(8)))
    progress.close()
    return ids


def count_rows(database_url: str, sql: str) -> int:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql(sql).scalar_one())
    finally:
        engine.dispose()


def google_inserts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`calendars.insert` calls that succeeded, from the Google emulator's request log."""
    return [
        r
        for r in rows
        if r["method"] == "POST"
        and r["path"].rstrip("/") == "/calendar/v3/calendars"
        and r["status"] == 200
    ]


def call_name(row: dict[str, Any]) -> str:
    """`POST calendars`, `PATCH users/me/calendarList/{id}` … from a Google log row."""
    parts = row["path"].removeprefix("/calendar/v3/").strip("/").split("/")
    named = [p if p in _RESOURCES else "{id}" for p in parts]
    return f"{row['method']} {'/'.join(named)}"


_RESOURCES = frozenset({"calendars", "users", "me", "calendarList", "acl", "batch"})


# Google limits raised for runs that create many calendars: the bridge's creation pace (default
# 30 an hour per owner) and request pace at their maximum, the emulator's limits off.
RAISED_GOOGLE = {
    "creation_pace": {"calendars": 1_000_000, "minutes": 1},
    "requests_per_minute": 10_000,
}


def add_database_argument(parser: Any) -> None:
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="postgresql",
        help="database of the end-to-end, economy and reconciliation runs (default postgresql)",
    )


@dataclass
class Prepared:
    """A running deployment with sections made in Bitrix24 whose events were not yet sent."""

    emulators: Emulators
    portal: Portal
    database_url: str
    section_ids: list[str]
    web_url: str


@contextmanager
def company_sections_ready(database: str, run: str, count: int, name: str) -> Iterator[Prepared]:
    """The common start of the event benchmarks: emulators, one portal mirroring company
    calendars only (no periodic reconciliation, Google's limits raised), `count` sections made
    silently, web and worker started, and the request logs cleared."""
    mirror = {"company": True, "resources": False, "locations": False, "groups": []}
    mirror["reconcile_interval_minutes"] = 0
    with running_emulators() as emulators:
        portal = register_portal(emulators, mirror=mirror, google=RAISED_GOOGLE)
        with fresh_database(database) as url, deployment(url, [portal], run) as deployed:
            bodies = [
                {"type": "company_calendar", "owner_id": 0, "name": f"{name} {i}"}
                for i in range(count)
            ]
            ids = asyncio.run(add_sections(emulators, portal, bodies, f"{run} setup"))
            web_url = deployed.start_web()[1]
            worker = deployed.start_worker()
            wait_for(lambda: worker_started(worker), 30, "the worker")
            emulators.clear_logs()
            yield Prepared(emulators, portal, url, ids, web_url)


def worker_started(process: BridgeProcess) -> bool:
    return "started for" in process.log.read_text(encoding="utf-8", errors="replace")
