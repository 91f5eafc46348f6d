"""`hito policy keys init|rotate|status` on real files: provisioning one host and a second
from a copy (the copy deleted), a rotation carried to the other host by a seed file (deleted),
a rotation of an epoch already begun refused, and no key ever printed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.pipeline.keystore import KeyStore
from hito.pipeline.pseudonyms import epoch_of

PURPOSE = "repeat_crossings"


def _run(monkeypatch: pytest.MonkeyPatch, store: Path, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("HITO_PRIVACY__KEY_STORE_FILE", str(store))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["policy", "keys", *args])
    return result.exit_code, result.output + str(result.exception or "")


def test_two_hosts_provisioned_and_rotated_agree_and_no_copy_is_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = tmp_path / "a" / "keys.json", tmp_path / "b" / "keys.json"
    code, out = _run(monkeypatch, first, "init")
    assert code == 0, out
    assert first.stat().st_mode & 0o777 == 0o600
    assert _run(monkeypatch, first, "init")[0] != 0  # never overwrites a store
    copy = tmp_path / "transit.json"
    copy.write_bytes(first.read_bytes())
    code, out = _run(monkeypatch, second, "init", "--from", str(copy))
    assert code == 0, out
    assert not copy.exists()

    today = epoch_of(datetime.now(UTC), 86400)
    a, b = KeyStore.open(first), KeyStore.open(second)
    assert a.lookup(PURPOSE, today + 5) == b.lookup(PURPOSE, today + 5) is not None
    before = a.lookup(PURPOSE, today + 1)

    seed = tmp_path / "seed.json"
    code, out = _run(monkeypatch, first, "rotate", "--purpose", PURPOSE, "--seed-out", str(seed))
    assert code == 0 and f"from epoch e{today + 1}" in out, out
    code, out = _run(monkeypatch, second, "rotate", "--purpose", PURPOSE, "--seed-in", str(seed))
    assert code == 0, out
    assert not seed.exists()
    a, b = KeyStore.open(first), KeyStore.open(second)
    assert a.lookup(PURPOSE, today) == b.lookup(PURPOSE, today) is not None  # today unchanged
    assert a.lookup(PURPOSE, today + 1) == b.lookup(PURPOSE, today + 1) != before

    code, out = _run(monkeypatch, first, "rotate", "--purpose", PURPOSE, "--from-epoch", str(today))
    assert code != 0 and "future epoch boundary" in out

    code, out = _run(monkeypatch, first, "status")
    assert code == 0, out
    assert PURPOSE in out and f"e{today + 1}" in out and "0o600" in out
    for store in (a, b):
        for epoch in range(today, today + 3):
            key = store.lookup(PURPOSE, epoch)
            assert key is not None and key.hex() not in out
