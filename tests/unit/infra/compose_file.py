"""docker-compose.yml and the Dockerfile as data, for the tests that check their structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hito.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
HITO_SERVICES = {"provision", "worker", "pager"}
SECRETS_DIR = "${HITO_SECRETS_DIR:-./secrets}"


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def bind_mounts() -> list[tuple[str, Path, str]]:
    """Mounts of repository files (short syntax); secrets from the environment are not."""
    out = []
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, dict):
                continue
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                out.append((name, (REPO_ROOT / source).resolve(), target))
    return out


def named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's named volumes (short syntax): volume name -> where it is mounted."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and not volume.startswith((".", "/")):
            name, target = volume.split(":")[:2]
            out[name] = target
    return out


def dockerfile() -> list[str]:
    return [line for line in DOCKERFILE.read_text().splitlines() if line and line[0] != "#"]
