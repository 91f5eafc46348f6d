"""Who can read docker compose's shared volumes, and where Grafana's InfluxDB token comes from.

A named volume that is empty when first mounted takes the owner and mode of the directory the
image has at that path (Docker's copy-up). The volumes provision mounts are first mounted by it
(every other service that mounts one waits for it to complete), so they take the hito image's
directories: owner 10001:10001, the Dockerfile's mode. The official images run as other users;
a reader of such a volume needs group 10001 (``group_add``), or it silently sees nothing:
Prometheus no workers to scrape, Grafana no token."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hito.cli import app
from hito.settings import REPO_ROOT, HitoSettings
from hito.settings.sections import PrometheusSettings
from hito.stack import discovery
from tests.unit.infra.compose_file import (
    COMPOSE,
    bind_mounts,
    dockerfile,
    named_mounts,
    services,
)

HITO_UID = HITO_GID = 10001
# The users the official images run as (their Dockerfiles' USER): nobody, and grafana.
IMAGE_UIDS = {"prom/prometheus": 65534, "grafana/grafana-oss": 472}


def _hito_dirs() -> dict[str, int]:
    """The directories the image makes for volumes: path -> mode."""
    [line] = [line for line in dockerfile() if "install -d" in line]
    found = re.search(r"install -d -o hito -g hito -m (0[0-7]{3}) (.+)$", line)
    assert found, line
    return {path: int(found[1], 8) for path in found[2].split()}


def _volume_modes() -> dict[str, int]:
    """The volumes provision mounts on the image's directories: name -> their mode."""
    dirs = _hito_dirs()
    provision = named_mounts(services()["provision"])
    return {name: dirs[target] for name, target in provision.items() if target in dirs}


def _can_list(service: dict[str, Any], mode: int) -> bool:
    """Whether the service's user may list (read and search) a directory of the hito user
    and group with this mode."""
    image = service["image"].split(":")[0]
    uid = HITO_UID if image == "hito" else IMAGE_UIDS[image]
    groups = {int(g) for g in service.get("group_add", [])}
    if uid == HITO_UID:
        bits = mode >> 6
    elif HITO_GID in groups:
        bits = mode >> 3
    else:
        bits = mode
    return bits & 0o5 == 0o5


def test_every_service_can_read_the_hito_volumes_it_mounts() -> None:
    modes = _volume_modes()
    assert modes == {"hito-state": 0o750, "worker-targets": 0o750, "grafana-token": 0o750}
    provision = named_mounts(services()["provision"])
    readers = []
    for name, service in services().items():
        for volume in set(named_mounts(service)) & set(modes):
            readers.append((name, volume))
            assert _can_list(service, modes[volume]), (name, volume)
            # Made from the hito image's directory: by a hito service at the same path, or
            # by provision before this service starts.
            if service["image"].startswith("hito:"):
                assert named_mounts(service)[volume] == provision[volume], (name, volume)
            else:
                assert service["depends_on"]["provision"] == {
                    "condition": "service_completed_successfully"
                }, name
    assert ("prometheus", "worker-targets") in readers and ("grafana", "grafana-token") in readers


def test_the_read_check_can_fail() -> None:
    prometheus = services()["prometheus"]
    assert _can_list(prometheus, 0o750)
    assert not _can_list({**prometheus, "group_add": []}, 0o750)  # nobody, not in the group
    assert not _can_list({**prometheus, "image": "grafana/grafana-oss:11.3.0"}, 0o700)


def test_grafana_reads_the_token_provision_writes_and_nothing_else() -> None:
    """Before, Grafana took the token from an .env entry the operator had to copy from
    `provision influx tokens`; forgotten, every InfluxDB panel failed, and nothing said why."""
    svc_by_name = services()
    command = svc_by_name["provision"]["command"]
    assert command[:2] == ["provision", "--grafana-token"]
    written = Path(command[2])
    assert str(written.parent) == named_mounts(svc_by_name["provision"])["grafana-token"]
    assert "--grafana-token" in CliRunner().invoke(app, ["provision", "--help"]).output
    grafana = svc_by_name["grafana"]
    read = Path(grafana["environment"]["HITO_GRAFANA_TOKEN_FILE"])
    assert read.name == written.name
    assert f"grafana-token:{read.parent}:ro" in grafana["volumes"]
    # Grafana gets that volume alone: never the state volume with the other tokens and keys.
    assert set(named_mounts(grafana)) == {"grafana-data", "grafana-token"}
    assert [name for name, s in svc_by_name.items() if "grafana-token" in named_mounts(s)] == [
        "provision",
        "grafana",
    ]
    # Its start script (the mounted one) reads the file, then runs the image's own entrypoint;
    # the healthcheck asks the same script whether the file still holds that token.
    [script] = [
        target
        for name, source, target in bind_mounts()
        if name == "grafana" and source == REPO_ROOT / "infra" / "grafana" / "compose-start.sh"
    ]
    assert grafana["entrypoint"] == ["bash", script]
    assert grafana["command"] == ["/run.sh"]
    assert grafana["healthcheck"]["test"][-1].endswith(f"&& bash {script} --token-unchanged")
    assert "DASHBOARDS_TOKEN" not in COMPOSE.read_text()


def test_the_files_in_the_shared_volumes_are_readable_by_their_group(tmp_path: Path) -> None:
    """The directories are not enough: a worker's target file Prometheus cannot open is no
    target either (Grafana's token, 0640, is checked where provision writes it for real)."""
    settings = HitoSettings(prometheus=PrometheusSettings(worker_targets_dir=tmp_path))
    old = os.umask(0o022)  # the image's (Docker's default)
    try:
        path = discovery.register(settings, "127.0.0.1:19999", {"instance": "w1"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) & stat.S_IRGRP
