"""Synthetic identities: ICAO 9303-style document numbers with valid check digits, plates,
birth years and nationalities. Generated from a seeded RNG; no real person's data."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

_ALNUM = string.ascii_uppercase + string.digits
_WEIGHTS = (7, 3, 1)

# Rough mix at Chacalluta-Santa Rosa: mostly Chilean and Peruvian, then neighbours.
NATIONALITIES: tuple[tuple[str, float], ...] = (
    ("PER", 0.48),
    ("CHL", 0.38),
    ("BOL", 0.05),
    ("VEN", 0.03),
    ("ARG", 0.02),
    ("COL", 0.015),
    ("BRA", 0.01),
    ("ECU", 0.008),
    ("USA", 0.004),
    ("DEU", 0.003),
)


def icao_check_digit(field: str) -> str:
    """ICAO 9303 part 3 check digit: weights 7,3,1; digits as values, A-Z as 10-35, '<' as 0."""
    total = 0
    for i, ch in enumerate(field):
        if ch.isdigit():
            value = int(ch)
        elif "A" <= ch <= "Z":
            value = ord(ch) - ord("A") + 10
        elif ch == "<":
            value = 0
        else:
            raise ValueError(f"not an MRZ character: {ch!r}")
        total += value * _WEIGHTS[i % 3]
    return str(total % 10)


def document_number(rng: random.Random) -> str:
    """A synthetic 9-character document number followed by its check digit."""
    body = "".join(rng.choice(_ALNUM) for _ in range(9))
    return body + icao_check_digit(body)


def vehicle_plate(rng: random.Random) -> str:
    letters = "".join(rng.choice("BCDFGHJKLPRSTVWXYZ") for _ in range(4))
    return f"{letters}-{rng.randint(10, 99)}"


def nationality(rng: random.Random) -> str:
    codes = [code for code, _ in NATIONALITIES]
    weights = [weight for _, weight in NATIONALITIES]
    return rng.choices(codes, weights=weights)[0]


def birth_year(rng: random.Random, now_year: int) -> int:
    return max(1925, min(now_year - 1, int(rng.gauss(now_year - 38, 15))))


@dataclass(frozen=True)
class Traveller:
    """A person who crosses again and again: what stays the same on each crossing."""

    document_type: str
    document_number: str
    nationality: str
    birth_year: int
    vehicle_plate: str

    def payload(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type,
            "document_number": self.document_number,
            "nationality": self.nationality,
            "birth_year": self.birth_year,
        }


def travellers(n: int, seed: int, now_year: int = 2026) -> list[Traveller]:
    """``n`` synthetic travellers, the same for the same ``seed`` and ``n``."""
    rng = random.Random(f"travellers-{seed}")  # noqa: S311 - reproducible synthetic data
    return [
        Traveller(
            document_type=rng.choices(["passport", "national_id", "tvf"], [3, 5, 2])[0],
            document_number=document_number(rng),
            nationality=nationality(rng),
            birth_year=birth_year(rng, now_year),
            vehicle_plate=vehicle_plate(rng),
        )
        for _ in range(n)
    ]
