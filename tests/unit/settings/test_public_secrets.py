"""The digests of the development files' secrets stay equal to the files, and the check works
where the files are not (a wheel or the image, which leave infra/dev/ out)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hito.settings as settings_module
from hito.settings import DEV_DIR, SettingsError, load_settings
from hito.settings.public_secrets import DIGESTS, SECRET_TEXT, digest, holds_public_secret


def test_the_digests_are_those_of_the_development_files() -> None:
    found = {
        secret
        for name in ("kafka-users.dev.yaml", "device-keys.dev.yaml")
        for secret in SECRET_TEXT.findall((DEV_DIR / name).read_text())
    }
    assert len(found) >= 5  # four passwords and the keys
    assert {digest(s) for s in found} == DIGESTS


def test_a_copy_is_refused_where_the_development_files_are_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copy = tmp_path / "users.yaml"
    copy.write_text((DEV_DIR / "kafka-users.dev.yaml").read_text())
    monkeypatch.setattr(settings_module, "DEV_DIR", tmp_path / "not-shipped")
    monkeypatch.delenv("HITO_PROFILE", raising=False)
    monkeypatch.setenv("HITO_KAFKA__USERS_FILE", str(copy))
    with pytest.raises(SettingsError, match="HITO_KAFKA__USERS_FILE"):
        load_settings()


def test_only_regular_small_files_are_read(tmp_path: Path) -> None:
    """A FIFO (or /dev/fd/N) would be consumed by reading it before its real reader."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert not holds_public_secret(fifo)  # returns at once: never opened
    assert not holds_public_secret(tmp_path / "missing")
    own = tmp_path / "own.yaml"
    own.write_text("keys:\n  cl-chacalluta-ckpt-01: " + "ab" * 32 + "\n")
    assert not holds_public_secret(own)
    own.write_text("password: hito-DEV-ONLY-anything-new\n")  # the marker alone
    assert holds_public_secret(own)
