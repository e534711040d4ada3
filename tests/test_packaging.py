"""The bridge as a wheel: installed into a fresh virtualenv, it migrates and runs the demo from any
directory (the migrations ship inside the package, nothing is read from the source tree).

Offline: the wheel is built from a copy of the project with the locked build backend already in
.venv (`--no-build-isolation`), and the new virtualenv gets its dependencies from .venv's
site-packages through a `.pth` line. Such a line only adds that folder to `sys.path`; the `.pth`
files inside it (the editable install's, pointing at the source tree) are not processed, and the
new virtualenv's own site-packages comes first, so `bridge` is imported from the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bridge.db import create_db_engine
from bridge.schema import schema_head, schema_revision
from tests.conftest import fresh_schema, schema_url

PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    """A virtualenv holding the bridge installed from its wheel."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bridge(self) -> Path:
        return self.root / "bin" / "bridge"


def _pip(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *map(str, args)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    source = tmp_path_factory.mktemp("source")  # a copy: building writes build/ and *.egg-info
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    shutil.copytree(
        PROJECT / "bridge", source / "bridge", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = tmp_path_factory.mktemp("wheels")
    _pip("wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", wheels, source)
    (wheel,) = wheels.glob("bitrix_google_bridge-*.whl")

    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    installed = Installed(root)
    _pip("--python", installed.python, "install", "--no-index", "--no-deps", wheel)
    site_packages = subprocess.run(
        [installed.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dependencies = sysconfig.get_path("purelib")  # the locked dependencies, already installed
    (Path(site_packages) / "locked-dependencies.pth").write_text(dependencies + "\n")
    return installed


def _run(command: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bridge_is_imported_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    result = _run([installed.python, "-c", "import bridge; print(bridge.__file__)"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed.root)


@pytest.mark.parametrize("entry", ["bridge", "python -m bridge"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_from_any_directory(
    installed: Installed, tmp_path: Path, entry: str, backend: str
) -> None:
    command: list[str | Path] = (
        [installed.bridge] if entry == "bridge" else [installed.python, "-m", "bridge"]
    )
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'bridge.db'}"
        result = _run([*command, "migrate"], tmp_path, DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        _assert_at_head(url)
        return
    with fresh_schema("pkg") as schema:
        url = schema_url(schema)
        result = _run([*command, "migrate"], tmp_path, DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        _assert_at_head(url)


def _assert_at_head(url: str) -> None:
    engine = create_db_engine(url)
    try:
        assert schema_revision(engine) == schema_head()
    finally:
        engine.dispose()


def test_demo_from_any_directory(installed: Installed, tmp_path: Path) -> None:
    result = _run([installed.bridge, "demo"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Google calendars (3):" in result.stdout
    assert "Mapping table (3):" in result.stdout
    for name in ("Company holidays", "Meeting room Everest", "Sales team"):
        assert name in result.stdout
    assert "done in" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo's database lives in its own temporary folder
    _assert_entries_shown(result.stdout)


def _assert_entries_shown(stdout: str) -> None:
    """The demo's four entries as Google shows them: a meeting at its local time, a one-day
    holiday with Google's exclusive end, a weekly series without its cancelled Monday and with
    its moved one at 11:00, a meeting whose location is the booked room's name."""
    assert "Entries as Google shows them (4):" in stdout
    shown = _entry_blocks(stdout)
    assert list(shown) == [
        "Pipeline review  (calendar Sales team)",
        "Founders' Day  (calendar Company holidays)",
        "Team stand-up  (calendar Sales team)",
        "Customer visit  (calendar Sales team)",
    ]
    [meeting, holiday, series, visit] = shown.values()

    assert re.fullmatch(rf"when {DAY} 10:00-11:00 Europe/Berlin", meeting[0])

    [when] = holiday
    first, after = re.findall(r"\d{4}-\d\d-\d\d", when)[-2:]
    assert when.endswith(
        f"all day (start.date {first}, end.date {after}: Google's end is exclusive)"
    )
    assert date.fromisoformat(after) - date.fromisoformat(first) == timedelta(days=1)

    assert re.fullmatch(rf"when {DAY} 09:00-09:15 Europe/Berlin", series[0])
    assert series[1] == "repeats RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"
    exdate = re.fullmatch(r"EXDATE;TZID=Europe/Berlin:(\d{8})T090000", series[2])
    assert exdate is not None
    assert series[3].startswith("instances ")
    instances = [series[3].removeprefix("instances "), series[4], series[5]]
    days = [date.fromisoformat(re.findall(r"\d{4}-\d\d-\d\d", i)[0]) for i in instances]
    cancelled = datetime.strptime(exdate.group(1), "%Y%m%d").date()
    assert [d - days[0] for d in days] == [timedelta(weeks=n) for n in (0, 2, 3)]
    assert cancelled == days[0] + timedelta(weeks=1)  # absent from the instances
    assert instances[0].endswith("09:00-09:15 Europe/Berlin")
    assert instances[1].endswith("11:00-11:30 Europe/Berlin  (moved from 09:00)")
    assert instances[2].endswith("09:00-09:15 Europe/Berlin")
    assert series[6].startswith("note ")

    assert re.fullmatch(rf"when {DAY} 14:00-15:30 Europe/Berlin", visit[0])
    assert visit[1] == "where Kilimanjaro"
    assert re.fullmatch(
        rf"booked calendar Kilimanjaro: Customer visit, {DAY} 14:00-15:30 Europe/Berlin", visit[3]
    )
    entry_events = stdout.split("Inbox, the entries' events")[1].split("done in")[0]
    assert "ONCALENDARENTRYADD" in entry_events
    assert all(" done " in line for line in entry_events.splitlines() if "ONCALENDARENTRY" in line)


DAY = r"\w{3} \d{4}-\d\d-\d\d"


def _entry_blocks(stdout: str) -> dict[str, list[str]]:
    """Each printed entry's heading, with its lines ("label value", or the value alone on a
    label's continuation lines)."""
    part = stdout.split("Entries as Google shows them (4):\n")[1].split("\n\n")[0]
    blocks: dict[str, list[str]] = {}
    for line in part.splitlines():
        if not line.startswith("    "):
            heading = line.strip()
            blocks[heading] = []
        else:
            label, value = line[4:14].strip(), line[15:]  # "    <label:10> <value>"
            blocks[heading].append(f"{label} {value}" if label else value)
    return blocks
