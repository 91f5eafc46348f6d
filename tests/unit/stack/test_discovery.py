"""Workers' target files for Prometheus' file discovery: written atomically where the settings
say, removed on a clean stop (the live checks are tests/integration/stack/test_discovery.py)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from hito.settings import HitoSettings
from hito.settings.sections import PrometheusSettings
from hito.stack import discovery


def test_register_writes_one_file_per_worker_and_unregister_removes_it(tmp_path: Path) -> None:
    settings = HitoSettings(state_dir=tmp_path)
    a = discovery.register(settings, "127.0.0.1:40001", {"app_id": "hito"})
    b = discovery.register(settings, "127.0.0.1:40002", {"app_id": "hito"})
    assert a.parent == tmp_path / "prometheus" / "targets" / "workers"
    assert sorted(p.name for p in a.parent.iterdir()) == [
        "worker-127.0.0.1-40001.json",
        "worker-127.0.0.1-40002.json",
    ]
    assert json.loads(b.read_text()) == [
        {"targets": ["127.0.0.1:40002"], "labels": {"app_id": "hito"}}
    ]
    assert discovery.registered(settings) == ["127.0.0.1:40001", "127.0.0.1:40002"]
    discovery.unregister(a)
    discovery.unregister(a)  # twice: no error
    assert discovery.registered(settings) == ["127.0.0.1:40002"]


def test_the_directory_can_be_set(tmp_path: Path) -> None:
    shared = tmp_path / "shared-volume"
    settings = HitoSettings(
        state_dir=tmp_path / "state", prometheus=PrometheusSettings(worker_targets_dir=shared)
    )
    path = discovery.register(settings, "127.0.0.1:40003", {})
    assert path == shared / "worker-127.0.0.1-40003.json"
    assert path == discovery.target_file(settings, "127.0.0.1:40003")


def test_an_unreadable_file_is_skipped_when_listing(tmp_path: Path) -> None:
    settings = HitoSettings(state_dir=tmp_path)
    discovery.register(settings, "127.0.0.1:40004", {})
    (discovery.worker_targets_dir(settings) / "broken.json").write_text("[{")
    assert discovery.registered(settings) == ["127.0.0.1:40004"]


def test_probe_answers_for_this_hosts_live_workers_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hito probe --worker` (the worker container's healthcheck) checks the workers whose
    local marker names a live process of this host, and fails when one does not answer."""
    from prometheus_client import CollectorRegistry, start_http_server
    from typer.testing import CliRunner

    from hito.cli import app

    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path))
    settings = HitoSettings(state_dir=tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["probe", "--worker"]).exit_code == 1  # no worker at all
    server, thread = start_http_server(0, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        live = f"127.0.0.1:{server.server_port}"
        discovery.mark_local(settings, live)
        # A marker of a process that is gone (a crashed worker) is not checked.
        dead = discovery.local_marker(settings, "127.0.0.1:1", pid=2**22 + 1)
        dead.write_text("127.0.0.1:1\n")
        assert discovery.local_workers(settings) == [live]
        result = runner.invoke(app, ["probe", "--worker"])
        assert (result.exit_code, result.output) == (0, "ok: 1 answering\n")
        closed = "http://127.0.0.1:1/health"
        failed = runner.invoke(app, ["probe", "--worker", closed])
        assert failed.exit_code == 1
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_replicas_with_one_host_name_and_pid_each_find_their_own_marker(
    tmp_path: Path,
) -> None:
    """In compose every worker replica has the host's name (host network) and pid 1: the
    markers were one file, so each healthcheck probed whichever replica wrote last, and a
    replica stopped cleanly removed the marker the others needed. Now each has its own (by
    port), and a probe takes only markers of its own pid namespace and process."""
    settings = HitoSettings(state_dir=tmp_path)
    mine = discovery.mark_local(settings, "127.0.0.1:9101")
    me = os.getpid()
    # Another container's replica: the same host name and pid, its own namespace and port.
    other = discovery.local_marker(settings, "127.0.0.1:9102", pid=me)
    assert other != mine
    other.write_text("127.0.0.1:9102\npid_ns=pid:[1]\nstart_time=1\nboot_id=x\n")
    # A marker naming this pid but another process (a pid reused after a crash).
    reused = discovery.local_marker(settings, "127.0.0.1:9103", pid=me)
    lines = mine.read_text().splitlines()
    reused.write_text("\n".join(["127.0.0.1:9103", lines[1], "start_time=1", lines[3]]) + "\n")
    # A worker of this namespace killed with -9: its pid is gone.
    killed = discovery.local_marker(settings, "127.0.0.1:9104", pid=2**22 + 1)
    killed.write_text("\n".join(["127.0.0.1:9104", *lines[1:]]) + "\n")
    assert discovery.local_workers(settings) == ["127.0.0.1:9101"]
    # Those two markers are stale for good and go; the other replica's stays.
    assert not reused.exists() and not killed.exists() and other.exists()
    # A marker of the version before: host and pid only, no namespace. Not taken.
    (tmp_path / "run" / f"worker-{socket.gethostname()}-{me}.address").write_text("127.0.0.1:1\n")
    assert discovery.local_workers(settings) == ["127.0.0.1:9101"]
    other.unlink()  # that replica stops cleanly: it removes its own marker, not this one's
    assert mine.exists()


def test_a_stale_marker_rewritten_since_it_was_read_is_kept(tmp_path: Path) -> None:
    """A replica that took the dead one's name (same host, pid and port) between the probe's
    read and its removal keeps its marker; one that cannot be removed stops nothing."""
    marker = tmp_path / "worker.address"
    marker.write_text("127.0.0.1:9101\npid_ns=pid:[1]\nstart_time=5\nboot_id=b\n")
    read = "\n".join(marker.read_text().split())
    marker.write_text("127.0.0.1:9101\npid_ns=pid:[1]\nstart_time=9\nboot_id=b\n")  # rewritten
    discovery._remove_if_unchanged(marker, read)
    assert marker.exists()
    discovery._remove_if_unchanged(marker, "\n".join(marker.read_text().split()))
    assert not marker.exists()
    (tmp_path / "a-directory").mkdir()
    discovery._remove_if_unchanged(tmp_path / "a-directory", "")  # not removable: no error
