"""The key store: provisioning, destruction of closed epochs' keys (from the file and from
memory), several workers on one file, several hosts in lockstep, rotation at an epoch
boundary, and errors that never quote a key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hito.files import SecretFileError
from hito.pipeline.keystore import Chain, KeyStore, KeyStoreError, Segment, new_key
from hito.pipeline.pseudonyms import epoch_of, pseudonym, ratchet_forward

DAY = 86400
GRACE = 360
PURPOSE = "repeat_crossings"
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
E = epoch_of(NOON, DAY)


def store_at(path: Path, now: datetime = NOON) -> KeyStore:
    return KeyStore.provision(path, {PURPOSE: DAY}, now, GRACE)


def file_keys(path: Path) -> set[str]:
    doc = json.loads(path.read_text())
    return {s["key"] for c in doc["purposes"].values() for s in c["chain"]}


def test_provisioning_writes_a_private_file_with_one_key_per_purpose(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "store.json"
    store = store_at(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.chains[PURPOSE].first_epoch == E
    assert len(file_keys(path)) == 1
    assert store.lookup(PURPOSE, E) is not None and store.lookup(PURPOSE, E - 1) is None
    assert store.lookup("another", E) is None
    with pytest.raises(KeyStoreError, match="exists already"):
        store_at(path)


def test_later_epochs_are_ratcheted_from_the_first(tmp_path: Path) -> None:
    store = store_at(tmp_path / "s.json")
    first = store.lookup(PURPOSE, E)
    assert first is not None
    assert store.lookup(PURPOSE, E + 3) == ratchet_forward(first, 3)
    assert KeyStore.open(tmp_path / "s.json").lookup(PURPOSE, E + 3) == ratchet_forward(first, 3)


def test_a_closed_epochs_key_is_destroyed_in_memory_and_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = store_at(path)
    day1 = store.lookup(PURPOSE, E)
    assert day1 is not None
    # Still open during the grace after midnight ...
    assert store.destroy_expired(NOON + timedelta(hours=12, seconds=GRACE - 1), GRACE) == {}
    assert store.lookup(PURPOSE, E) == day1
    # ... closed after it.
    assert store.destroy_expired(NOON + timedelta(hours=12, seconds=GRACE), GRACE) == {
        PURPOSE: E + 1
    }
    assert store.lookup(PURPOSE, E) is None
    assert day1.hex() not in path.read_text()
    assert file_keys(path) == {ratchet_forward(day1, 1).hex()}
    assert KeyStore.open(path).lookup(PURPOSE, E) is None
    assert not (tmp_path / "s.json.tmp").exists()


def test_workers_sharing_a_file_each_forget_the_key_on_their_own_tick(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    a = store_at(path)
    b = KeyStore.open(path)
    later = NOON + timedelta(days=2)
    a.destroy_expired(later, GRACE)
    assert a.lookup(PURPOSE, E) is None
    b.destroy_expired(later, GRACE)  # re-reads the file (nothing left to change) and follows
    assert b.lookup(PURPOSE, E) is None and b.chains == a.chains


def test_hosts_started_from_one_copy_agree_on_every_epoch_without_talking(
    tmp_path: Path,
) -> None:
    first = store_at(tmp_path / "a.json")
    (tmp_path / "b.json").write_bytes((tmp_path / "a.json").read_bytes())
    second = KeyStore.open(tmp_path / "b.json")
    first.destroy_expired(NOON + timedelta(days=3), GRACE)  # host A ratchets 3 days ahead
    second.destroy_expired(NOON + timedelta(days=1), GRACE)  # host B 1 day
    for epoch in (E + 3, E + 4, E + 30):
        assert first.lookup(PURPOSE, epoch) == second.lookup(PURPOSE, epoch) is not None
    assert first.lookup(PURPOSE, E + 1) is None and second.lookup(PURPOSE, E + 1) is not None


def test_rotation_takes_effect_at_a_future_epoch_boundary(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = store_at(path)
    before = [store.lookup(PURPOSE, e) for e in (E, E + 1)]
    fresh = new_key()
    with pytest.raises(KeyStoreError, match="future epoch boundary"):
        store.rotate(PURPOSE, E, fresh, NOON)  # today has begun: one person, two pseudonyms
    store.rotate(PURPOSE, E + 2, fresh, NOON)
    assert [store.lookup(PURPOSE, e) for e in (E, E + 1)] == before  # unchanged until then
    assert store.lookup(PURPOSE, E + 2) == fresh
    assert store.lookup(PURPOSE, E + 5) == ratchet_forward(fresh, 3)
    old_chain = before[1]
    assert old_chain is not None and ratchet_forward(old_chain, 1) != fresh
    # The old chain's keys vanish once the new one's first epoch is the oldest open.
    store.destroy_expired(NOON + timedelta(days=2), GRACE)
    assert store.chains[PURPOSE].segments == (Segment(E + 2, fresh),)
    assert file_keys(path) == {fresh.hex()}
    # Another host applies the same seed and agrees.
    other = Chain(DAY, (Segment(E, before[0] or b""),))
    assert other.rotated(E + 2, fresh).key(E + 5) == store.lookup(PURPOSE, E + 5)


def test_a_pseudonym_of_a_destroyed_epoch_cannot_be_made_again(tmp_path: Path) -> None:
    store = store_at(tmp_path / "s.json")
    key = store.lookup(PURPOSE, E)
    assert key is not None
    made = pseudonym(key, PURPOSE, "document_number", "X12345678", E)
    store.destroy_expired(NOON + timedelta(days=1), GRACE)
    held = [store.lookup(PURPOSE, e) for e in range(E - 5, E + 60)]
    remade = {
        pseudonym(k, PURPOSE, "document_number", "X12345678", e)
        for k in held
        if k is not None
        for e in range(E - 5, E + 60)
    }
    assert made not in remade and len(remade) > 1000


def test_a_damaged_store_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = store_at(path)
    secret = (store.lookup(PURPOSE, E) or b"").hex()
    path.write_text(path.read_text().replace('"epoch_s": 86400', '"epoch_s": "x"'))
    with pytest.raises(SecretFileError) as err:
        KeyStore.open(path)
    assert "not a key store" in str(err.value) and secret not in str(err.value)
    with pytest.raises(KeyStoreError, match="hito policy keys init"):
        KeyStore.open(tmp_path / "missing.json")
