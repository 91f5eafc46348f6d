from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.pseudonyms import (
    epoch_closed_at,
    epoch_of,
    epoch_start,
    first_open_epoch,
    pseudonym,
    ratchet,
    ratchet_forward,
)

DAY = 86400
K = bytes(range(32))
values = st.text(min_size=1, max_size=40)


def test_epochs_are_utc_days_for_a_24_hour_horizon() -> None:
    at = datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC)
    e = epoch_of(at, DAY)
    assert epoch_start(e, DAY) == datetime(2026, 12, 3, tzinfo=UTC)
    assert epoch_of(datetime(2026, 12, 4, tzinfo=UTC), DAY) == e + 1
    # Arica (UTC-3) at 21:30 on the 3rd is already the 4th in UTC.
    arica = datetime.fromisoformat("2026-12-03T21:30:00-03:00")
    assert epoch_of(arica, DAY) == e + 1


def test_an_epoch_closes_at_its_end_plus_the_grace() -> None:
    e = epoch_of(datetime(2026, 12, 3, 12, tzinfo=UTC), DAY)
    assert epoch_closed_at(e, DAY, 360) == datetime(2026, 12, 4, 0, 6, tzinfo=UTC)
    assert first_open_epoch(datetime(2026, 12, 4, 0, 5, 59, tzinfo=UTC), DAY, 360) == e
    assert first_open_epoch(datetime(2026, 12, 4, 0, 6, tzinfo=UTC), DAY, 360) == e + 1


def test_the_ratchet_moves_forward_only_and_composes() -> None:
    assert ratchet(K) != K and len(ratchet(K)) == 32
    assert ratchet_forward(K, 3) == ratchet(ratchet(ratchet(K)))
    assert ratchet_forward(ratchet_forward(K, 2), 5) == ratchet_forward(K, 7)
    assert len({ratchet_forward(K, n) for n in range(200)}) == 200
    with pytest.raises(ValueError, match="only moves forward"):
        ratchet_forward(K, -1)


@given(value=values)
def test_stable_within_a_purpose_and_epoch(value: str) -> None:
    assert pseudonym(K, "p", "f", value, 7) == pseudonym(K, "p", "f", value, 7)


@given(value=values)
def test_differs_across_epoch_keys_purposes_and_fields(value: str) -> None:
    a = pseudonym(K, "repeat_crossings", "document_number", value, 7)
    others = {
        pseudonym(ratchet(K), "repeat_crossings", "document_number", value, 8),
        pseudonym(K, "another_purpose", "document_number", value, 7),
        pseudonym(K, "repeat_crossings", "vehicle_plate", value, 7),
    }
    assert a not in others and len(others) == 3


@given(value=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<", min_size=4, max_size=20))
def test_never_contains_the_input_and_names_its_epoch(value: str) -> None:
    p = pseudonym(K, "repeat_crossings", "document_number", value, 20790)
    assert value not in p and value.lower() not in p
    assert p.startswith("e20790:") and len(p) == len("e20790:") + 32


@given(a=values, b=values)
def test_different_inputs_give_different_pseudonyms(a: str, b: str) -> None:
    if a != b:
        assert pseudonym(K, "p", "f", a, 1) != pseudonym(K, "p", "f", b, 1)
