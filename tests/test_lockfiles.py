"""The hashed lock files agree with pyproject.toml (offline: the files and installed metadata).

requirements.txt is what Heroku installs, requirements-dev.txt what scripts/bootstrap installs; both
are written by scripts/lock. pip's hash-checking mode needs every line pinned and hashed.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
LOCK_TOOL = ROOT / "scripts" / "lock-tool.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def entries(path: Path) -> list[list[str]]:
    """Each requirement of a requirements file as its tokens, continuation lines joined."""
    logical: list[list[str]] = []
    pending: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        continued = line.endswith("\\")
        pending.extend(line.removesuffix("\\").split())
        if not continued:
            logical.append(pending)
            pending = []
    assert not pending, f"{path.name} ends inside a continued line"
    return logical


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for tokens in entries(path):
        match = PIN.match(tokens[0])
        assert match, f"{path.name}: {tokens[0]!r} is not name==version"
        found[canonicalize_name(match["name"])] = match["version"]
    return found


def unmet(lock: Path, roots: list[str]) -> list[str]:
    """Requirements reachable from `roots` that the lock does not pin to a version they accept.

    The dependencies of each pinned package are read from the installed metadata, which must be
    the pinned version (scripts/bootstrap installs the dev lock).
    """
    pinned = pins(lock)
    problems: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(text) for text in roots]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in {"", *requirement.extras}
        ):
            continue
        name = canonicalize_name(requirement.name)
        version = pinned.get(name)
        if version is None:
            problems.append(f"{requirement} is not pinned in {lock.name}")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} does not accept the pinned {name}=={version}")
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (run scripts/bootstrap)")
            continue
        if installed != version:
            problems.append(f"{name} {installed} is installed, the lock pins {version}")
            continue
        for text in metadata.requires(name) or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in {"", *requirement.extras}
            ):
                dependency.marker = None
                todo.append(dependency)
    return problems


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK, LOCK_TOOL], ids=lambda p: p.name)
def test_every_line_is_one_pinned_package_with_its_hashes(path: Path) -> None:
    for tokens in entries(path):
        assert PIN.match(tokens[0]), f"{path.name}: {tokens[0]!r} is not name==version"
        hashes = tokens[1:]
        assert hashes, f"{path.name}: {tokens[0]} has no hash"
        for token in hashes:
            assert HASH.match(token), f"{path.name}: {tokens[0]}: {token!r} is not a sha256 hash"


def test_runtime_lock_pins_every_runtime_dependency_and_the_build_backend() -> None:
    project = pyproject()
    roots = project["project"]["dependencies"] + project["build-system"]["requires"]
    assert unmet(RUNTIME_LOCK, roots) == []


def test_dev_lock_pins_runtime_dev_and_build_dependencies() -> None:
    project = pyproject()
    roots = (
        project["project"]["dependencies"]
        + project["project"]["optional-dependencies"]["dev"]
        + project["build-system"]["requires"]
    )
    assert unmet(DEV_LOCK, roots) == []


def test_runtime_lock_pins_the_same_versions_as_the_dev_lock() -> None:
    dev = pins(DEV_LOCK)
    differing = {
        name: (version, dev.get(name))
        for name, version in pins(RUNTIME_LOCK).items()
        if dev.get(name) != version
    }
    assert differing == {}
