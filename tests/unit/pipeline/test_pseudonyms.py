from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.pseudonyms import Keyring, PseudonymKey, pseudonym

K1 = PseudonymKey("k1", bytes(range(32)), datetime(2026, 1, 1, tzinfo=UTC))
K2 = PseudonymKey("k2", bytes(range(1, 33)), datetime(2026, 6, 1, tzinfo=UTC))
ring = Keyring((K1, K2), overlap=timedelta(days=30))

values = st.text(min_size=1, max_size=40)


@given(value=values)
def test_stable_for_the_same_key(value: str) -> None:
    assert pseudonym(K1, "document_number", value) == pseudonym(K1, "document_number", value)


@given(value=values)
def test_differs_across_keys_and_fields(value: str) -> None:
    a = pseudonym(K1, "document_number", value)
    assert a != pseudonym(K2, "document_number", value)
    assert a != pseudonym(K1, "vehicle_plate", value)


@given(value=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<", min_size=4, max_size=20))
def test_never_contains_the_input(value: str) -> None:
    p = pseudonym(K1, "document_number", value)
    assert value not in p and value.lower() not in p
    assert p.startswith("k1:") and len(p) == 3 + 32


@given(a=values, b=values)
def test_different_inputs_give_different_pseudonyms(a: str, b: str) -> None:
    if a != b:
        assert pseudonym(K1, "f", a) != pseudonym(K1, "f", b)


def test_rotation_keys_before_during_and_after_the_overlap() -> None:
    before = datetime(2026, 5, 31, 23, 59, tzinfo=UTC)
    during = datetime(2026, 6, 15, tzinfo=UTC)
    after = datetime(2026, 7, 1, 0, 1, tzinfo=UTC)
    assert [k.key_id for k in ring.valid_at(before)] == ["k1"]
    assert [k.key_id for k in ring.valid_at(during)] == ["k2", "k1"]
    assert [k.key_id for k in ring.valid_at(after)] == ["k2"]
