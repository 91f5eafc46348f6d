from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hito.runtime import load_runtime
from hito.settings import DEV_DIR, DEV_ONLY_INFLUX_TOKEN, HitoSettings, SettingsError, load_settings
from hito.settings.sections import MissingSecret


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


# --- Secrets fail closed (issue #18) ---------------------------------------------------------

SECRET_VARIABLES = [
    "HITO_KAFKA__USERS_FILE",
    "HITO_INFLUXDB__TOKEN",
    "HITO_INFLUXDB__PASSWORD",
    "HITO_PIPELINE__DEVICES_FILE",
    "HITO_PIPELINE__DEVICE_KEYS_FILE",
    "HITO_PRIVACY__KEY_STORE_FILE",
]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITO_PROFILE", raising=False)
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_outside_development_no_secret_falls_back(production: None) -> None:
    s = HitoSettings()
    assert s.profile == "production" and not s.development_secrets
    with pytest.raises(MissingSecret, match="HITO_KAFKA__USERS_FILE"):
        s.kafka.users_path()
    with pytest.raises(MissingSecret, match="HITO_INFLUXDB__TOKEN"):
        s.influxdb.admin_token()
    with pytest.raises(MissingSecret, match="HITO_INFLUXDB__PASSWORD"):
        s.influxdb.admin_password()
    with pytest.raises(MissingSecret) as missing:
        load_runtime(s)
    assert missing.value.variables == [
        "HITO_PIPELINE__DEVICES_FILE",
        "HITO_PIPELINE__DEVICE_KEYS_FILE",
        "HITO_PRIVACY__KEY_STORE_FILE",
    ]


@pytest.mark.parametrize("variable", [*SECRET_VARIABLES, "HITO_INFLUXDB__PIPELINE_TOKEN"])
def test_a_secret_set_to_nothing_is_not_set(
    production: None, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """``HITO_INFLUXDB__PIPELINE_TOKEN=`` (or ``${UNSET}`` in a compose file) was a token of
    nothing: the worker started and every write got 401. A file setting was ``Path(".")``,
    and the start failed with "Is a directory". Now an empty variable is an unset one, and the
    command that needs it refuses naming it."""
    monkeypatch.setenv(variable, "")
    section, name = variable.removeprefix("HITO_").lower().split("__")
    settings = HitoSettings()
    assert getattr(getattr(settings, section), name) is None
    with pytest.raises(MissingSecret, match=variable):
        settings.require((section, name))


def test_the_development_profile_fills_in_the_public_files(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITO_PROFILE", "development")
    s = HitoSettings()
    assert s.development_secrets
    assert s.kafka.users_path() == DEV_DIR / "kafka-users.dev.yaml"
    assert s.pipeline.registry_files() == (
        DEV_DIR / "devices.dev.yaml",
        DEV_DIR / "device-keys.dev.yaml",
    )
    assert s.influxdb.admin_token().get_secret_value() == DEV_ONLY_INFLUX_TOKEN
    # A secret that is set stays what it is set to.
    monkeypatch.setenv("HITO_INFLUXDB__TOKEN", "my-own-token")
    assert HitoSettings().influxdb.admin_token().get_secret_value() == "my-own-token"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HITO_KAFKA__USERS_FILE", str(DEV_DIR / "kafka-users.dev.yaml")),
        ("HITO_PIPELINE__DEVICE_KEYS_FILE", str(DEV_DIR / "device-keys.dev.yaml")),
        ("HITO_PIPELINE__DEVICES_FILE", str(DEV_DIR / ".." / "dev" / "devices.dev.yaml")),
        ("HITO_INFLUXDB__TOKEN", DEV_ONLY_INFLUX_TOKEN),
    ],
)
def test_a_development_secret_is_refused_in_production(
    production: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable) as refused:
        load_settings()
    assert DEV_ONLY_INFLUX_TOKEN not in str(refused.value)  # named, never repeated


@pytest.mark.parametrize(
    ("variable", "public"),
    [
        ("HITO_KAFKA__USERS_FILE", "kafka-users.dev.yaml"),
        ("HITO_PIPELINE__DEVICE_KEYS_FILE", "device-keys.dev.yaml"),
    ],
)
@pytest.mark.parametrize("how", ["copied", "one secret pasted"])
def test_a_copy_of_a_development_secret_file_is_refused_in_production(
    production: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    public: str,
    how: str,
) -> None:
    """``cp infra/dev/kafka-users.dev.yaml /etc/hito/users.yaml``: the path said nothing, so
    the public admin password (or the public device keys: anyone could sign events) ran a
    production deployment."""
    text = (DEV_DIR / public).read_text()
    copy = tmp_path / "secret.yaml"
    if how == "copied":
        copy.write_text(text)
    else:  # a file of its own, but for one line taken from the public one
        secret = re.compile(r"hito-DEV-ONLY-kafka-admin|[0-9a-f]{64}")
        line = next(ln for ln in text.splitlines() if secret.search(ln))
        copy.write_text(line.strip() + "\n")
    monkeypatch.setenv(variable, str(copy))
    with pytest.raises(SettingsError, match=variable):
        load_settings()
    copy.write_text(text.replace("DEV-ONLY", "own-secret").replace("a", "b"))
    assert load_settings()  # its own secrets: accepted


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hito.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _production_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k != "HITO_PROFILE" and k not in SECRET_VARIABLES
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["worker"],
            [
                "HITO_KAFKA__USERS_FILE",
                "HITO_PIPELINE__DEVICES_FILE",
                "HITO_PIPELINE__DEVICE_KEYS_FILE",
                "HITO_PRIVACY__KEY_STORE_FILE",
            ],
        ),
        (["dlq", "inspect"], ["HITO_KAFKA__USERS_FILE"]),
        (["devices", "seq", "ck-01"], ["HITO_KAFKA__USERS_FILE"]),
        (["up"], ["HITO_KAFKA__USERS_FILE"]),
        (["influx", "tokens"], ["HITO_INFLUXDB__TOKEN"]),
    ],
)
def test_commands_refuse_to_start_without_their_secrets(
    tmp_path: Path, args: list[str], named: list[str]
) -> None:
    env = {**_production_env(), "HITO_STATE_DIR": str(tmp_path / "state")}
    done = _cli(args, env, tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()  # one clear line, no traceback
    assert line.startswith("hito: error: not set: ")
    assert all(name in line for name in named)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "kafka").exists()  # nothing was started


def test_provision_checks_the_key_store_setting_before_changing_anything(tmp_path: Path) -> None:
    """It needed the key store only at its end: users, ACLs, topics, tokens and retention were
    applied, then it refused. Now it refuses first (and never reaches Kafka: port 9)."""
    users = tmp_path / "users.yaml"
    admin = "{name: hito-admin, role: admin, password: own-secret-password-0123456789abcdef}"
    users.write_text(f"users:\n  - {admin}\n")
    env = {
        **_production_env(),
        "HITO_STATE_DIR": str(tmp_path / "state"),
        "HITO_KAFKA__USERS_FILE": str(users),
        "HITO_KAFKA__PORT": "9",
        "HITO_INFLUXDB__TOKEN": "own-token",
        "HITO_INFLUXDB__PASSWORD": "own-password",
    }
    done = _cli(["provision"], env, tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("hito: error: not set: HITO_PRIVACY__KEY_STORE_FILE (")


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"HITO_KAFKA__HOST": "10.20.0.5"}, "HITO_KAFKA__HOST"),
        ({"HITO_KAFKA__HOST": "kafka.border.internal"}, "HITO_KAFKA__HOST"),
        ({"HITO_INFLUXDB__HOST": "10.20.0.6"}, "HITO_INFLUXDB__HOST"),
        ({"HITO_KAFKA__SSL_CAFILE": "/etc/hito/ca.pem"}, "HITO_KAFKA__SSL_CAFILE"),
        ({"HITO_KAFKA__HOST": "10.20.0.5", "HITO_KAFKA__ALLOW_PLAINTEXT": "true"}, None),
        ({"HITO_INFLUXDB__HOST": "10.20.0.6", "HITO_INFLUXDB__ALLOW_PLAINTEXT": "true"}, None),
        (
            {
                "HITO_KAFKA__HOST": "10.20.0.5",
                "HITO_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "HITO_KAFKA__SSL_CAFILE": "/etc/hito/ca.pem",
            },
            None,
        ),
        ({"HITO_KAFKA__HOST": "localhost", "HITO_INFLUXDB__HOST": "::1"}, None),
    ],
)
def test_plaintext_beyond_loopback_is_refused_unless_asked_for(
    production: None, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], refused: str | None
) -> None:
    """Outside the development profile, events (personal data) and InfluxDB tokens never
    cross a network in clear by default: a forgotten HITO_KAFKA__SECURITY_PROTOCOL used to
    be accepted without a word (and a CA file set without it, silently ignored)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if refused is None:
        load_settings()
        return
    with pytest.raises(SettingsError, match=refused) as error:
        load_settings()
    assert "10.20.0" not in str(error.value)  # named, never repeated


def test_the_development_profile_may_use_plaintext_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITO_PROFILE", "development")
    monkeypatch.setenv("HITO_KAFKA__HOST", "10.20.0.5")
    assert load_settings().kafka.security_protocol == "SASL_PLAINTEXT"
