"""The benchmarks' layer over `bridge.deployment`: every bridge process they start is measured,
its peak RSS noted in `MEMORY` (`python -m bench memory`) and, with `--profile DIR`, sampled by
py-spy (`PROFILING`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.deployment import BridgeProcess, Deployment


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


class MeasuredProcess(BridgeProcess):
    """A bridge process whose peak RSS is noted in `MEMORY` under the run's name when it stops,
    and which `PROFILING` samples."""

    def __init__(
        self, argv: list[str], env: Mapping[str, str], folder: Path, role: str, run_name: str
    ) -> None:
        super().__init__(argv, env, folder, role)
        self.run_name = run_name
        self.peak_mib = 0.0
        self._spy = PROFILING.attach(self.pid, role)

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
        """Wait for the exit, reading VmHWM every 20 ms until then.

        Not the kernel's `ru_maxrss` of the child: a child's maximum starts from the RSS of the
        process that forked it (Linux keeps the old image's high-water mark across `exec`), so
        for every child of a benchmark process larger than the child it reported the benchmark's
        own size."""
        if self.popen.returncode is not None:  # already reaped by Popen.poll()
            return self.popen.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.read_peak()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                return self.popen.returncode
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.popen.args, timeout or 0)
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> int:
        detach(self._spy)
        if self.popen.returncode is None:
            self.read_peak()
        code = super().stop(timeout)
        MEMORY.note(self.role, self.peak_mib, self.run_name)
        return code


class BenchDeployment(Deployment):
    """A deployment whose processes are measured; closing it stops them gracefully, so that
    their peaks are noted under `run_name`."""

    def __init__(
        self, database_url: str, folder: Path, portals: list[dict[str, Any]], run_name: str
    ) -> None:
        super().__init__(database_url, folder, portals)
        self.run_name = run_name

    def _spawn(self, argv: list[str], role: str) -> BridgeProcess:
        return MeasuredProcess(argv, self.env, self.folder, role, self.run_name)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        super().close()
