"""Run an ASGI app under a real uvicorn server in a background thread (tests, demo, sandbox)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the owning process keeps its own handlers
        pass


class ServerThread:
    """A uvicorn server on 127.0.0.1 in a daemon thread; `url` is known once `start()` returns."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.host = host
        self.port = port or _free_port(host)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level=options.pop("log_level", "warning"),
            access_log=False,
            lifespan=options.pop("lifespan", "on"),
            **options,
        )
        self._server = _QuietServer(config)
        self._thread = threading.Thread(
            target=self._server.run, daemon=True, name=f"uvicorn:{self.port}"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {self.url} did not start in {timeout}s")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
