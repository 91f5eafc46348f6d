"""`hito up` builds Prometheus and Alertmanager through the Runner (progress, log file) with the
settings' versions, once: a cached build is not built again (no real build here)."""

from __future__ import annotations

from pathlib import Path

from hito.settings import HitoSettings
from hito.stack.monitoring import Alertmanager, Prometheus, tool_path


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
