from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from hito.device.simulate.identities import document_number, icao_check_digit


def test_icao_specimen_check_digits() -> None:
    # ICAO 9303 part 4 specimen: document number L898902C3, check digit 6; birth date 740812 -> 2.
    assert icao_check_digit("L898902C3") == "6"
    assert icao_check_digit("740812") == "2"
    assert icao_check_digit("<<<<<<<<<") == "0"


@given(seed=st.integers(0, 2**32))
def test_generated_numbers_carry_a_valid_check_digit(seed: int) -> None:
    number = document_number(random.Random(seed))
    assert len(number) == 10
    assert icao_check_digit(number[:9]) == number[9]
