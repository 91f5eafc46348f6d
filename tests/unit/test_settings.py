from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hito.settings import DEV_ONLY_INFLUX_TOKEN, HitoSettings


def test_defaults_are_loopback_and_dev_marked() -> None:
    s = HitoSettings()
    assert s.kafka.bootstrap == "127.0.0.1:19092"
    assert s.influxdb.url == "http://127.0.0.1:18086"
    assert (s.influxdb.org, s.influxdb.bucket) == ("hito", "hito")
    assert "DEV-ONLY" in s.influxdb.admin_token().get_secret_value()
    assert DEV_ONLY_INFLUX_TOKEN not in repr(s)  # secrets never printed


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITO_STATE_DIR", "/srv/hito")
    monkeypatch.setenv("HITO_INFLUXDB__PORT", "8086")
    s = HitoSettings()
    assert s.state_dir == Path("/srv/hito")
    assert s.influxdb.url == "http://127.0.0.1:8086"


def test_bad_value_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITO_KAFKA__PORT", "70000")
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        HitoSettings()


def test_settings_are_frozen() -> None:
    s = HitoSettings()
    with pytest.raises(ValidationError):
        s.pager_port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka.port = 1  # type: ignore[misc]
