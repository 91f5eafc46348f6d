"""Which of two policy versions is the newer (an aggregate counted under both is tagged with
it)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hito.schemas.privacy.policy import _version_key, newest_version


@pytest.mark.parametrize(
    ("a", "b", "newest"),
    [
        ("2026-12-03.9", "2026-12-03.10", "2026-12-03.10"),  # string order said .9
        ("2026-12-03.10", "2026-12-03.9", "2026-12-03.10"),
        ("2026-12-03.2", "2026-12-04.1", "2026-12-04.1"),
        ("", "2026-12-03.2", "2026-12-03.2"),  # a new window has no policy yet
        ("v2", "v10", "v10"),
        ("v01", "v1", "v1"),  # a tie of numbers: the text decides, either way round
        ("v1", "v01", "v1"),
    ],
)
def test_numbers_compare_as_numbers(a: str, b: str, newest: str) -> None:
    assert newest_version(a, b) == newest


VERSIONS = st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True)


@given(VERSIONS, VERSIONS, VERSIONS)
def test_it_is_an_order_whatever_the_versions(a: str, b: str, c: str) -> None:
    """Never raises (text and numbers never compared), symmetric and associative, so the tag
    does not depend on the order events arrived in."""
    assert newest_version(a, b) == newest_version(b, a) in (a, b)
    assert newest_version(newest_version(a, b), c) == newest_version(a, newest_version(b, c))


@given(VERSIONS)
def test_no_version_yet_is_older_than_any(a: str) -> None:
    """No version yet (the empty text of a new window or person-day) gives way to any version,
    as the order says: the shortcut for it must agree with the key."""
    assert newest_version("", a) == newest_version(a, "") == a
    assert _version_key("") < _version_key(a)
