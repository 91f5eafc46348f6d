"""`hito policy keys init|rotate|status` on real files: provisioning one host and a second
from a copy (the copy deleted), a rotation carried to the other host by a seed file (deleted),
a rotation of an epoch already begun refused, and no key ever printed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.pipeline.keystore import Chain, KeyStore, Segment, new_key, write_chain_file
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


def test_a_store_without_a_worker_has_its_closed_keys_destroyed_by_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Keys of closed epochs were destroyed only by a running worker: a store whose host ran
    none (stopped, standby, retired) kept a closed day's key, from which every later day's
    key follows. `status` now says so (exit 1) and `destroy-expired` does it."""
    store = tmp_path / "keys.json"
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    KeyStore.provision(store, {PURPOSE: 86400}, three_days_ago, 360)
    old = epoch_of(three_days_ago, 86400)
    assert KeyStore.open(store).lookup(PURPOSE, old) is not None
    code, out = _run(monkeypatch, store, "status")
    assert code == 1 and "keys of closed epochs are still held" in out, out
    code, out = _run(monkeypatch, store, "destroy-expired")
    assert code == 0, out
    today = epoch_of(datetime.now(UTC), 86400)
    assert f"{PURPOSE}: keys before e" in out
    after = KeyStore.open(store)
    assert after.lookup(PURPOSE, old) is None
    assert after.chains[PURPOSE].first_epoch in (today - 1, today)  # (yesterday in its grace)
    assert _run(monkeypatch, store, "status")[0] == 0
    code, out = _run(monkeypatch, store, "destroy-expired")
    assert code == 0 and "no key of a closed epoch was held" in out


def test_a_refused_seed_is_deleted_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A seed whose epoch has begun here is refused; it used to stay on disk, holding every
    key of the new chain."""
    store, seed = tmp_path / "keys.json", tmp_path / "seed.json"
    assert _run(monkeypatch, store, "init")[0] == 0
    today = epoch_of(datetime.now(UTC), 86400)
    write_chain_file(seed, {PURPOSE: Chain(86400, (Segment(today, new_key()),))})
    code, out = _run(monkeypatch, store, "rotate", "--purpose", PURPOSE, "--seed-in", str(seed))
    assert code != 0 and "future epoch boundary" in out, out
    assert not seed.exists()
