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
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.db import create_db_engine, schema_head, schema_revision
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
