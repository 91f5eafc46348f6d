"""`hito up` builds InfluxDB, Prometheus and Alertmanager through the Runner (progress, log
file) with the settings' versions, once: a cached build is not built again (no real build
here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hito.settings import HitoSettings
from hito.stack.monitoring import Alertmanager, Prometheus, tool_path
from hito.stack.services import InfluxDB


def test_builds_run_the_scripts_with_the_settings_versions_once(tmp_path: Path) -> None:
    settings = HitoSettings(cache_dir=tmp_path / "cache")
    calls: list[tuple[list[str], Path, str]] = []

    def run(argv: list[str], log: Path, label: str) -> None:
        calls.append((argv, log, label))

    Prometheus("prometheus", "").install(settings, run)
    Alertmanager("alertmanager", "").install(settings, run)
    assert [(c[0], c[1].name) for c in calls] == [
        (
            [
                "env",
                "PROMETHEUS_VERSION=3.16.0",
                f"HITO_CACHE_DIR={tmp_path / 'cache'}",
                "bash",
                str(settings.infra_dir / "prometheus" / "build.sh"),
            ],
            "prometheus-build.log",
        ),
        (
            [
                "env",
                "ALERTMANAGER_VERSION=0.35.0",
                f"HITO_CACHE_DIR={tmp_path / 'cache'}",
                "bash",
                str(settings.infra_dir / "alertmanager" / "build.sh"),
            ],
            "alertmanager-build.log",
        ),
    ]
    assert "Prometheus 3.16.0 build" in calls[0][2]
    # What the scripts leave in the cache (their default outputs) is what `hito up` runs.
    for name in ("prometheus", "promtool", "alertmanager", "amtool"):
        path = tool_path(settings, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    calls.clear()
    Prometheus("prometheus", "").install(settings, run)
    Alertmanager("alertmanager", "").install(settings, run)
    assert calls == []
    argv = Prometheus("prometheus", "").argv(settings)
    assert argv[0] == str(tmp_path / "cache" / "bin" / "prometheus-v3.16.0")


def _history(tmp_path: Path, marker: str | None) -> tuple[HitoSettings, Path]:
    settings = HitoSettings(state_dir=tmp_path / "state")
    home = Prometheus("prometheus", "metrics").data_dir(settings)
    (home / "data").mkdir(parents=True)
    kept = home / "data" / "chunk"
    kept.write_bytes(b"metrics history")
    if marker is not None:
        (home / "major-version").write_text(marker)
    return settings, kept


def test_the_metrics_history_goes_only_for_another_major_version(tmp_path: Path) -> None:
    """An empty marker (a power cut while it was written, before it was written atomically)
    was taken for another major version: the whole history was deleted."""
    prometheus = Prometheus("prometheus", "metrics")
    major = HitoSettings().prometheus.version.split(".")[0]
    for n, (marker, stays) in enumerate([("", True), (None, True), (major, True), ("2\n", False)]):
        settings, kept = _history(tmp_path / str(n), marker)
        prometheus.prepare(settings)
        assert kept.exists() is stays, marker
        marker_file = prometheus.data_dir(settings) / "major-version"
        assert marker_file.read_text() == f"{major}\n"


def test_influxdb_is_built_with_the_configured_version_into_the_configured_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build script was run without the version: `HITO_INFLUXDB__VERSION=v2.9.2` built the
    script's default v2.9.1 and cached it as influxd-v2.9.2."""
    monkeypatch.setattr("hito.stack.services.require_command", lambda *_: None)
    settings = HitoSettings(cache_dir=tmp_path / "cache")
    settings = settings.model_copy(
        update={"influxdb": settings.influxdb.model_copy(update={"version": "2.9.2"})}
    )
    calls: list[list[str]] = []
    InfluxDB("influxdb", "").install(settings, lambda argv, log, label: calls.append(argv))
    out = tmp_path / "cache" / "bin" / "influxd-v2.9.2"
    assert calls == [
        [
            "env",
            "INFLUXDB_VERSION=v2.9.2",
            f"HITO_CACHE={tmp_path / 'cache'}",
            "bash",
            str(settings.infra_dir / "influxdb" / "build.sh"),
            str(out),
        ]
    ]
