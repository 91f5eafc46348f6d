"""Keys are never printed: a key planted in a broken secret file appears in no error message,
log line or command output (issue #18, finding 6). YAML and pydantic both quote the offending
text in their own messages; in a keys file that text is the key."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hito.credentials import load_users
from hito.devices import DeviceRegistry
from hito.files import SecretFileError
from hito.pipeline.keystore import KeyStore

KEY = secrets.token_hex(32)  # a fresh "secret" per run: it cannot be in any fixture text


def fragments(secret: str, size: int = 8) -> set[str]:
    """Every ``size``-character piece of the secret: printing part of a key leaks too."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def leaked(text: str, secret: str = KEY) -> set[str]:
    return {f for f in fragments(secret) if f in text}


# (file name, content with the planted key, loader)
CASES: dict[str, tuple[str, Callable[[Path], object]]] = {
    "pseudonym key store, a key with a stray character": (
        '{"format": "hito.pseudonym-keys/1", "purposes": {"repeat_crossings": '
        f'{{"epoch_s": 86400, "chain": [{{"from_epoch": 20790, "key": "{KEY}Z"}}]}}}}}}',
        KeyStore.open,
    ),
    "pseudonym key store that is not JSON": (
        f'{{"purposes": {{"repeat_crossings": {{"chain": [{{"key": "{KEY}',
        KeyStore.open,
    ),
    "device key as a list": (
        f"keys:\n  cl-chacalluta-ckpt-01: [{KEY}]\n",
        lambda p: DeviceRegistry.load(Path("infra/dev/devices.dev.yaml"), p),
    ),
    "device keys file with a tab": (
        f"keys:\n\tcl-chacalluta-ckpt-01: {KEY}\n",
        lambda p: DeviceRegistry.load(Path("infra/dev/devices.dev.yaml"), p),
    ),
    "kafka password with a forbidden character": (
        f"users:\n  - {{name: hito-admin, role: admin, password: '{KEY}$'}}\n",
        load_users,
    ),
    # YAML's own message quotes the text after "!" (a tag) or "*" (an alias).
    "kafka password starting with '!'": (
        f"users:\n  - {{name: hito-admin, role: admin, password: !{KEY}}}\n",
        load_users,
    ),
    "kafka password starting with '*'": (
        f"users:\n  - {{name: hito-admin, role: admin, password: *{KEY}}}\n",
        load_users,
    ),
    # pydantic's location names the unknown key: here the password itself.
    "kafka password written without its key": (
        f"users:\n  - {{name: hito-admin, role: admin, {KEY}}}\n",
        load_users,
    ),
    # The registry is not a secret, but a secret file may be named as it by mistake.
    "a token file given as the devices file": (
        f"{KEY}\n",
        lambda p: DeviceRegistry.load(p, Path("infra/dev/device-keys.dev.yaml")),
    ),
    "the keys file given as the devices file": (
        f"keys:\n  cl-chacalluta-ckpt-01: {KEY}\n",
        lambda p: DeviceRegistry.load(p, Path("infra/dev/device-keys.dev.yaml")),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_secret_file_error_never_quotes_the_key(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content, load = CASES[case]
    path = tmp_path / "secret.yaml"
    path.write_text(content)
    with caplog.at_level(logging.DEBUG), pytest.raises(SecretFileError) as error:
        load(path)
    assert str(path) in str(error.value)  # it says which file
    assert leaked(str(error.value)) == set()
    assert leaked(repr(error.value)) == set()
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert leaked(caplog.text) == set()


def test_a_worker_refusing_a_broken_key_file_prints_no_key(tmp_path: Path) -> None:
    keys = tmp_path / "pseudonym-keys.json"
    keys.write_text(CASES["pseudonym key store, a key with a stray character"][0])
    devices = tmp_path / "devices.yaml"
    devices.write_text(Path("infra/dev/devices.dev.yaml").read_text())
    # Fresh secrets: outside the development profile, copies of the public ones are refused.
    device_ids = yaml.safe_load(devices.read_text())["devices"]
    device_keys = tmp_path / "device-keys.yaml"
    device_keys.write_text(yaml.safe_dump({"keys": {d: secrets.token_hex(32) for d in device_ids}}))
    users = tmp_path / "users.yaml"
    roles = ("admin", "pipeline", "operator", "device")
    users.write_text(
        yaml.safe_dump(
            {
                "users": [
                    {"name": f"hito-{r}", "role": r, "password": secrets.token_hex(16)}
                    for r in roles
                ]
            }
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "HITO_PROFILE"},
        "HITO_PRIVACY__KEY_STORE_FILE": str(keys),
        "HITO_PIPELINE__DEVICES_FILE": str(devices),
        "HITO_PIPELINE__DEVICE_KEYS_FILE": str(device_keys),
        "HITO_KAFKA__USERS_FILE": str(users),
        "HITO_STATE_DIR": str(tmp_path / "state"),
    }
    for args in (["worker"], ["--debug", "worker"]):
        done = subprocess.run(
            [sys.executable, "-m", "hito.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert str(keys) in done.stderr
        assert leaked(done.stdout + done.stderr) == set(), args
